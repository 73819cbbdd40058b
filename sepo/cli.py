"""The sepo command line: evaluate or play a policy, list what can be named, plan or apply a params profile.

Every user mistake (unknown game, opponent or policy name, bad params) is
one line on stderr and exit code 2; nothing is written before the inputs are
validated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from sepo.config import Params, load_params
from sepo.errors import ConfigError, unknown_name
from sepo.games import GAME_NAMES
from sepo.games.protocol import POOLS, adapts_to_agent
from sepo.io import write_json_atomic
from sepo.rollout import AgentPolicy, EpisodeSpec, ScriptedAgent, play_episodes

POLICY_KINDS = {"scripted": "scripted:NAME", "model": "model:PATH"}


def resolve_policy(params: Params, game: str, spec: str) -> AgentPolicy:
    """``scripted:NAME`` or ``model:PATH`` (a model directory or Hub id) -> the agent policy for ``game``."""
    kind, _, name = spec.partition(":")
    if kind not in POLICY_KINDS or not name:
        raise ConfigError(f"bad policy {spec!r}; expected one of: {', '.join(POLICY_KINDS.values())}")
    if kind == "model":
        from sepo.policies.model import load_model_policy

        return load_model_policy(name, params)
    return ScriptedAgent(params.strategy(game, name))


def _games(arg: str) -> list[str]:
    if arg == "all":
        return list(GAME_NAMES)
    if arg not in GAME_NAMES:
        raise unknown_name("game", arg, (*GAME_NAMES, "all"))
    return [arg]


def cmd_evaluate(args: argparse.Namespace) -> None:
    from sepo.evaluation import evaluate_games, evaluate_policy, with_audit_fields

    params = load_params(args.params)
    games = _games(args.game)
    settings = {"episodes": args.episodes, "seed": args.seed, "batch_size": params.generation.batch_size}
    bar = _evaluation_progress(params, games, args.episodes)
    settings["on_step"] = bar.update
    if args.policy.startswith("model:"):  # one model plays every domain: load it once, all domains in lockstep
        policy = resolve_policy(params, games[0], args.policy)
        played = evaluate_games(params, games, policy, **settings)
        results = {g: with_audit_fields(params, g, policy, *played[g])[0] for g in games}
    else:
        policies = {g: resolve_policy(params, g, args.policy) for g in games}  # validate all first
        results = {g: with_audit_fields(params, g, policies[g], *evaluate_policy(params, g, policies[g], **settings))[0]
                   for g in games}
    bar.close()
    output = {"policy": args.policy, "profile": params.profile, "games": results}
    if args.out:
        write_json_atomic(args.out, output)
    print(metrics_table(results, params.eval.confidence))


#: the metrics `sepo evaluate` prints (every one of SPEC section 4 is in the --out JSON)
CONSOLE_METRICS = ("pay", "exploit", "collusion", "externality", "safety", "nra", "robust", "invalid_rate")


def metrics_table(results: dict[str, dict], confidence: float) -> str:
    """One block per domain: each console metric with its bootstrap confidence interval."""
    lines = []
    for game, result in results.items():
        lines.append(f"{game} ({result['episodes_per_opponent']} episodes per opponent; "
                     f"value [{100 * confidence:g}% bootstrap CI])")
        for key in CONSOLE_METRICS:
            m = result["metrics"][key]
            lines.append(f"  {key:13s} {m['value']:8.3f}  [{m['ci_low']:.3f}, {m['ci_high']:.3f}]")
    return "\n".join(lines)


def _evaluation_progress(params: Params, games: list[str], episodes: int | None):
    """A progress bar over the evaluation's agent decisions, estimated as one per round of every episode."""
    from sepo.progress import Progress

    per_opponent = params.eval.episodes if episodes is None else episodes
    total = sum(per_opponent * len(params.pool(g, pool)) * params.games[g].rounds for g in games for pool in POOLS)
    return Progress(total, desc=f"evaluate {', '.join(games)}", unit="decision")


def cmd_list(args: argparse.Namespace) -> None:
    from sepo.policies.scripted import strategy_names
    from sepo.profiles import profile_names

    params = load_params(args.params)
    for game in GAME_NAMES:
        spec = params.games[game]
        print(f"{game} ({spec.rounds} rounds)")
        for pool in POOLS:
            print(f"  {pool + ' pool':16s} {', '.join(spec.pools.of(pool))}")
        print(f"  {'demonstrators':16s} {', '.join(spec.demonstrators)}")
        names = strategy_names(game)
        adaptive = [n for n in names if adapts_to_agent(params.strategy(game, n))]
        print(f"  {'all strategies':16s} {', '.join(n for n in names if n not in adaptive)}  (--policy scripted:NAME)")
        if adaptive:
            print(f"  {'opponents only':16s} {', '.join(adaptive)}  (bound to the agent's played policy)")
    print(f"profiles: {', '.join(profile_names())}  (sepo plan --profile NAME)")


def cmd_play(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    game_name = _games(args.game)[0] if args.game != "all" else None
    if game_name is None:
        raise ConfigError("play needs one game, not 'all'")
    policy = resolve_policy(params, game_name, args.policy)
    opponent = params.strategy(game_name, args.opponent)
    spec = EpisodeSpec(params.game(game_name), opponent, args.pool, args.seed)
    played = play_episodes([spec], policy)[0]
    for message in played.messages:
        print(f"--- {message['role']} ---")
        print(message["content"])
    record = played.record
    total_agent = sum(record.agent_payoffs())
    total_opponent = sum(record.opponent_payoffs())
    print(f"--- result ---\nagent {total_agent:g}, opponent {total_opponent:g} over {len(record.rounds)} rounds")


def cmd_plan(args: argparse.Namespace) -> None:
    import json

    from sepo.lora_coverage import plan_coverage
    from sepo.profiles import build_plan, resolve
    from sepo.training.groups import relative_weights

    params = resolve(args.params, args.profile)
    plan = build_plan(params, args.profile)
    plan["lora_coverage"] = plan_coverage(params)  # adapted modules/layers, trainable parameters (no weights)
    plan["sepo_penalty_weight_vs_safety"] = {  # sepo.group_weighting: each penalty's weight as a multiple of J's
        game: relative_weights(params, game, params.penalty.mode) for game in params.games}
    print(json.dumps(plan, indent=2))


def cmd_profile(args: argparse.Namespace) -> None:
    from sepo.profiles import apply_profile, dvc_command

    if not args.apply:
        print(dvc_command(args.params, args.name))
        return
    changed = apply_profile(args.params, args.name)
    print(f"{args.params}: profile {args.name} applied ({len(changed)} values changed); run dvc repro")


class _DeprecatedAlias(argparse.Action):
    """Stores the value; an option string other than the first (the old name) prints a warning."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string != self.option_strings[0]:
            print(f"sepo: warning: {option_string} is deprecated; use {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def package_version() -> str:
    try:
        return version("sepo")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _add_params(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--params", default=default, metavar="FILE", help="params file (default: params.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sepo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    _add_params(parser, "params.yaml")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="evaluate a policy against every opponent of every pool")
    ev.add_argument("--policy", required=True, help="scripted:NAME or model:PATH")
    ev.add_argument("--game", required=True, help=f"one of {', '.join(GAME_NAMES)}, or all")
    ev.add_argument("--episodes", type=int, default=None, help="episodes per opponent (default: eval.episodes)")
    ev.add_argument("--seed", type=int, default=None, help="base seed (default: eval.seed)")
    ev.add_argument("--out", default=None, help="write all metrics to this JSON file")
    ev.set_defaults(func=cmd_evaluate)

    listing = sub.add_parser("list", help="list the games, each pool's strategies, the demonstrators and "
                             "the profiles")
    listing.set_defaults(func=cmd_list)

    play = sub.add_parser("play", help="print one episode as the transcript the model sees")
    play.add_argument("--game", required=True, help=", ".join(GAME_NAMES))
    play.add_argument("--policy", "--agent", dest="policy", required=True, action=_DeprecatedAlias,
                      help="scripted:NAME or model:PATH (--agent: deprecated name)")
    play.add_argument("--opponent", required=True, help="an opponent name of that game")
    play.add_argument("--pool", default="train", choices=POOLS, help="pool label recorded with the episode")
    play.add_argument("--seed", type=int, default=0)
    play.set_defaults(func=cmd_play)

    plan = sub.add_parser("plan", help="resolve and validate the params (with a profile) and print the "
                          "trainer, LoRA and sampling configs the stages would build; downloads nothing")
    plan.add_argument("--profile", default=None, help="a profile under profiles/ (default: none)")
    plan.set_defaults(func=cmd_plan)

    profile = sub.add_parser("profile", help="print the dvc exp run -S ... command that runs a profile, "
                             "or --apply it to the params file")
    profile.add_argument("name", help="a profile under profiles/, e.g. paper-qwen")
    profile.add_argument("--apply", action="store_true", help="write its values into the params file")
    profile.set_defaults(func=cmd_profile)
    for command in sub.choices.values():  # --params after the subcommand too; SUPPRESS keeps one given before
        _add_params(command, argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "episodes", None) is not None and args.episodes <= 0:
            raise ConfigError("--episodes must be a positive integer")
        args.func(args)
    except ConfigError as exc:
        print(f"sepo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
