"""The model policy: batched sampling, prefix reuse, the constrained fallback, loading errors."""

from __future__ import annotations

import pytest
import torch

from sepo.cli import main
from sepo.errors import ConfigError
from sepo.evaluation import evaluate_policy
from sepo.models.loading import load_model_and_tokenizer
from sepo.policies.model import ModelPolicy, SamplingSettings, _length_groups, reply_is_complete
from sepo.policies.prefix import shared_length
from sepo.rollout import DecisionRequest, EpisodeSpec, play_episodes
from tests.model_fixtures import GAMES, PARAMS, ROOT, tiny_model_dir

GREEDY = SamplingSettings(max_new_tokens=12, greedy=True)


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    return load_model_and_tokenizer(tiny_model_dir(str(tmp_path_factory.getbasetemp())))


def mixed_specs(per_game: int = 2) -> list[EpisodeSpec]:
    return [EpisodeSpec(PARAMS.game(game), PARAMS.pool(game, pool)[0], pool, seed)
            for game in GAMES for seed, pool in enumerate(("train", "exploit")[:per_game])]


def transcript(played) -> list[list[tuple[tuple[int, ...], str, bool]]]:
    return [[(tuple(r.extras["token_ids"]), r.action, r.valid) for r in p.replies] for p in played]


class ForcedToken(torch.nn.Module):
    """A model that puts +100 on one token's logit: it writes that token and nothing else."""

    def __init__(self, model, token_id: int) -> None:
        super().__init__()
        self.inner = model
        self.config = model.config
        self.generation_config = model.generation_config
        self.token_id = token_id

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        out.logits[..., self.token_id] += 100.0
        return out


def test_greedy_evaluation_is_exactly_reproducible(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    runs = [evaluate_policy(PARAMS, "kuhn", ModelPolicy(model, tokenizer, GREEDY), episodes=1, seed=3)
            for _ in range(2)]
    assert runs[0][0] == runs[1][0]
    assert transcript(runs[0][1]) == transcript(runs[1][1])


def test_sampling_with_the_same_seed_replays_the_same_replies(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    sampling = SamplingSettings(max_new_tokens=8)
    played = [play_episodes(mixed_specs(1), ModelPolicy(model, tokenizer, sampling, seed=5)) for _ in range(2)]
    other = play_episodes(mixed_specs(1), ModelPolicy(model, tokenizer, sampling, seed=6))
    assert transcript(played[0]) == transcript(played[1])
    assert transcript(played[0]) != transcript(other)


def test_lockstep_batch_gives_the_same_greedy_replies_as_one_episode_at_a_time(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    specs = mixed_specs()
    batched_policy = ModelPolicy(model, tokenizer, GREEDY)
    batched = play_episodes(specs, batched_policy, batch_size=7)
    alone = [play_episodes([spec], ModelPolicy(model, tokenizer, GREEDY))[0] for spec in specs]
    assert transcript(batched) == transcript(alone)
    assert [p.record for p in batched] == [p.record for p in alone]
    assert batched_policy._prefixes == {}  # every finished episode's cache was freed


def test_prefix_reuse_changes_nothing_but_the_cost(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    fresh = ModelPolicy(model, tokenizer, GREEDY)
    fresh.reuses_prefixes = False
    assert transcript(play_episodes(mixed_specs(), ModelPolicy(model, tokenizer, GREEDY))) == \
        transcript(play_episodes(mixed_specs(), fresh))


def test_replies_carry_their_token_ids_and_logprobs(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    policy = ModelPolicy(model, tokenizer, SamplingSettings(max_new_tokens=6, temperature=1.0, top_k=0, top_p=1.0))
    played = play_episodes(mixed_specs(1)[:1], policy)[0]
    reply = played.replies[0]
    prompt = tokenizer(policy.render(played.messages[:2]), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + reply.extras["token_ids"]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    expected = [logprobs[len(prompt) - 1 + k, t].item() for k, t in enumerate(reply.extras["token_ids"])]
    assert reply.extras["logprobs"] == pytest.approx(expected, abs=1e-4)
    assert tokenizer.decode(reply.extras["token_ids"], skip_special_tokens=True).rstrip() == reply.text


@pytest.mark.parametrize("game", ["ipd", "kuhn"])
def test_garbage_replies_all_fall_back_to_legal_actions(model_and_tokenizer, game):
    model, tokenizer = model_and_tokenizer
    garbage = ForcedToken(model, tokenizer.convert_tokens_to_ids("~"))
    policy = ModelPolicy(garbage, tokenizer, SamplingSettings(max_new_tokens=5))
    result, played = evaluate_policy(PARAMS, game, policy, episodes=1, seed=0)
    decisions = [d for p in played for d in p.record.decisions]
    assert all(d.reply == "~~~~~" and not d.valid and d.action in d.legal_actions for d in decisions)
    assert result["metrics"]["invalid_rate"]["value"] == 1.0
    # the fallback is the legal action the model scores highest after "Action: "
    for p in played[:3]:
        request = DecisionRequest(0, PARAMS.game(game), None, p.messages[:2], 0, None)
        context = policy.render(request.messages) + "~~~~~\n"
        scores = policy.action_log_scores([context], [p.record.decisions[0].legal_actions])[0]
        assert p.record.decisions[0].action == max(scores, key=scores.__getitem__)


def test_action_scores_equal_a_plain_forward_pass(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    policy = ModelPolicy(model, tokenizer, GREEDY)
    played = play_episodes(mixed_specs(1), policy)
    contexts, legal = [], []
    for p in played:
        contexts.append(policy.render(p.messages[:-1]))
        legal.append(p.record.decisions[-1].legal_actions[:6])
    scores = policy.action_log_scores(contexts, legal)
    for context, actions, scored in zip(contexts, legal, scores, strict=True):
        prefix = tokenizer(context + "Action:", add_special_tokens=False)["input_ids"]
        for action in actions:
            full = tokenizer(context + "Action: " + action, add_special_tokens=False)["input_ids"]
            start = next(k for k, (a, b) in enumerate(zip([*prefix, -1], full, strict=False)) if a != b)
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].float(), dim=-1)
            expected = sum(logprobs[k - 1, full[k]].item() for k in range(start, len(full)))
            assert scored[action] == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("sequences, length", [
    (([1, 2, 3], [1, 2, 4]), 2), (([1, 2], [1, 2, 3]), 2), (([], [1]), 0), (([1], [2]), 0),
    (([1, 2, 3], (1, 2, 3), [1, 2, 3, 4]), 3), (([5, 6, 7, 8], [5, 6, 7, 9], [5, 0]), 1),
])
def test_shared_length_is_the_common_token_prefix(sequences, length):
    assert shared_length(*sequences) == length


def test_length_groups_cover_every_row_once_with_little_padding():
    lengths = [100, 40, 80, 76, 75, 30, 99]
    groups = _length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(4 * lengths[i] >= 3 * lengths[g[0]] and lengths[i] <= lengths[g[0]] for g in groups for i in g)
    assert groups == [[0, 6, 2, 3, 4], [1, 5]]


@pytest.mark.parametrize("text, complete", [
    ("Round 1.\nAction: DEFECT\n", True),
    ("Round 1.\nAction: DEFECT", False),  # the line may still grow
    ("Action:\n", False),  # no value yet
    ("<think>\nAction: BET\n", False),  # inside an unclosed think block
    ("<think>Action: BET</think>\nAction: CHECK\n", True),
    ("**Action:** LOW\n", True),
])
def test_a_reply_is_complete_once_its_action_line_ends(text, complete):
    assert reply_is_complete(text) is complete


@pytest.mark.parametrize("path, message", [
    ("/no/such/model", "model path not found: /no/such/model"),
    ("./relative/missing", "model path not found: ./relative/missing"),
])
def test_a_missing_model_path_is_one_clear_line(path, message):
    with pytest.raises(ConfigError) as error:
        load_model_and_tokenizer(path)
    assert str(error.value) == message


def test_a_hub_id_while_offline_is_one_clear_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import, so patch it too
    with pytest.raises(ConfigError) as error:
        load_model_and_tokenizer("sepo-tests/no-such-model")
    assert "\n" not in str(error.value)
    assert str(error.value).startswith("cannot load model 'sepo-tests/no-such-model'")


def test_cli_evaluates_a_model_policy_and_reports_a_missing_one(tmp_path, capsys):
    small = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace("max_new_tokens: 64", "max_new_tokens: 4")
    small.write_text(text)
    model_dir = tiny_model_dir(str(tmp_path.parent))
    out = tmp_path / "eval.json"
    assert main(["--params", str(small), "evaluate", "--policy", f"model:{model_dir}", "--game", "negotiation",
                 "--episodes", "1", "--out", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert main(["--params", str(small), "evaluate", "--policy", "model:/no/model", "--game", "ipd"]) == 2
    assert capsys.readouterr().err == "sepo: error: model path not found: /no/model\n"


def test_the_fast_decoder_plays_the_same_greedy_episodes_as_the_standard_loop(tmp_path_factory):
    """Chunks of its slot count, slots kept across an episode's decisions, long decisions on the standard loop."""
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir(str(tmp_path_factory.getbasetemp())))
    specs = mixed_specs()
    stock = play_episodes(specs, ModelPolicy(model, tokenizer, GREEDY), batch_size=7)
    lengths = sorted(len(tokenizer(ModelPolicy(model, tokenizer).render(p.messages[:2]), add_special_tokens=False)
                         ["input_ids"]) for p in stock)
    capacity = lengths[len(lengths) // 2] + 40  # about half the first decisions, fewer of the later ones, fit
    policy = ModelPolicy(model, tokenizer, GREEDY)
    assert policy.use_fast_decoder(slots=4, capacity=capacity, compile=False)
    calls = []
    fast_generate = policy.fast.generate
    policy.fast.generate = lambda ids, keys: calls.append(len(ids)) or fast_generate(ids, keys)
    fast = play_episodes(specs, policy, batch_size=7)
    assert transcript(fast) == transcript(stock)
    assert calls and max(calls) <= 4  # batches of 7 went in chunks of at most 4 slots
    assert sum(calls) < sum(len(p.replies) for p in fast)  # the decisions too long for a slot ran here
    assert policy.fast._slot_of == {}  # every ended episode gave its slot back


@pytest.mark.parametrize(("setting", "attached"), [("on", True), ("auto", torch.cuda.is_available()), ("off", False)])
def test_the_fast_decode_param_picks_the_decode_loop(tmp_path_factory, setting, attached):
    from sepo.policies.model import load_model_policy

    params = PARAMS.model_copy(update={"generation": PARAMS.generation.model_copy(update={"fast_decode": setting})})
    policy = load_model_policy(tiny_model_dir(str(tmp_path_factory.getbasetemp())), params)
    assert (policy.fast is not None) == attached
    if attached:
        assert policy.fast.slots == params.generation.fast_decode_slots
        assert policy.fast.decoder.cache.capacity >= params.generation.fast_decode_capacity


def test_played_action_scores_through_kept_prefixes_equal_whole_contexts(model_and_tokenizer):
    """Scoring decision k + 1 on top of decision k's kept keys/values changes nothing but the cost."""
    from sepo.games.parsing import reply_before_action
    from sepo.policies.action_scores import probabilities_from_scores, scored_records
    from sepo.rollout import AgentReply

    class ReasonsThenActs:  # replies with an Action line, as a trained model's do (a random model's rarely)
        def decide(self, requests):
            return [AgentReply(text=f"Round noted.\nAction: {r.view.legal_actions[-1]}",
                               action=r.view.legal_actions[-1]) for r in requests]

    model, tokenizer = model_and_tokenizer
    sampled = SamplingSettings(temperature=0.8, top_p=0.95, top_k=50, max_new_tokens=24)
    policy = ModelPolicy(model, tokenizer, sampled)
    played = play_episodes(mixed_specs(2), ReasonsThenActs())
    records = scored_records(policy, played)
    assert not policy.prefix_cache.episodes  # scoring's kept prefixes are dropped afterwards
    compared = 0
    for episode, record in zip(played, records, strict=True):
        for k, decision in enumerate(episode.record.decisions):
            context = policy.render(episode.messages[:2 * k + 2]) + reply_before_action(decision.reply)
            (whole,) = ModelPolicy(model, tokenizer, sampled).action_log_scores([context], [decision.legal_actions])
            expected = probabilities_from_scores(whole, 0.8, False, 0.95, 50)
            assert record.decisions[k].probabilities == pytest.approx(expected, abs=1e-4)
            compared += 1
    assert compared > 20
