"""The lockstep engine with scripted agents: same episodes as the one-at-a-time loop."""

from sepo.games.ipd import IPD
from sepo.games.protocol import play_scripted_episode
from sepo.policies.scripted import make_strategy
from sepo.rollout import EpisodeSpec, ScriptedAgent, play_episodes


def test_lockstep_equals_sequential_and_keeps_the_chat_format():
    game = IPD()
    opponents = ["TitForTat", "Mixed", "Pavlov", "GenerousTFT"]
    specs = [EpisodeSpec(game, make_strategy("ipd", o), "train", seed)
             for o in opponents for seed in range(3)]
    agent = make_strategy("ipd", "Random")
    played = play_episodes(specs, ScriptedAgent(agent), batch_size=5)
    for spec, result in zip(specs, played, strict=True):
        alone = play_scripted_episode(game, agent, spec.opponent, spec.seed, spec.pool)
        assert result.record == alone
        roles = [m["role"] for m in result.messages]
        assert roles == ["system"] + ["user", "assistant"] * game.rounds
        assert result.messages[0]["content"] == game.rules_text()
        assert all(m["content"].endswith(f"Action: {d.action}")
                   for m, d in zip(result.messages[2::2], result.record.decisions, strict=True))
