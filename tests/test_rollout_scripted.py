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


def test_adaptive_opponents_are_played_last_bound_to_what_the_others_played():
    from dataclasses import replace

    from sepo.games.kuhn import Kuhn
    from sepo.rollout import play_adaptive_last

    game = Kuhn()
    names = ["AlwaysBet", "BestResponse", "AlwaysPass", "BestResponse"]
    specs = [EpisodeSpec(game, make_strategy("kuhn", n), "exploit", seed) for seed, n in enumerate(names)]
    agent = ScriptedAgent(make_strategy("kuhn", "NashApprox"))
    seen: dict = {}

    def bind(first):
        seen.update(first)  # stand-in binding: each adaptive slot meets a fixed opponent on its own seed
        return {i: replace(specs[i], opponent=make_strategy("kuhn", "TightValue")) for i in (1, 3)}

    played = play_adaptive_last(specs, agent, bind, batch_size=3)
    assert sorted(seen) == [0, 2] and [seen[i].record.opponent for i in (0, 2)] == ["AlwaysBet", "AlwaysPass"]
    assert [p.record.opponent for p in played] == ["AlwaysBet", "TightValue", "AlwaysPass", "TightValue"]
    assert [p.record.seed for p in played] == [0, 1, 2, 3]
    alone = play_episodes([replace(specs[3], opponent=make_strategy("kuhn", "TightValue"))], agent)
    assert played[3].record == alone[0].record


def test_waves_of_max_active_play_the_same_episodes_with_fewer_in_play():
    """``max_active`` bounds the episodes in play (a model keeps each one's keys/values) and changes nothing else."""
    game = IPD()
    specs = [EpisodeSpec(game, make_strategy("ipd", o), "train", seed)
             for o in ("TitForTat", "Mixed", "Grim") for seed in range(4)]

    class Counting(ScriptedAgent):
        def __init__(self, strategy):
            super().__init__(strategy)
            self.largest = 0

        def decide(self, requests):
            self.largest = max(self.largest, len(requests))
            return super().decide(requests)

    whole, waves = Counting(make_strategy("ipd", "Random")), Counting(make_strategy("ipd", "Random"))
    one_pass = play_episodes(specs, whole)
    in_waves = play_episodes(specs, waves, max_active=5)
    assert [p.record for p in in_waves] == [p.record for p in one_pass]
    assert [p.messages for p in in_waves] == [p.messages for p in one_pass]
    assert whole.largest == len(specs) and waves.largest == 5
