"""SEPO-GRPO training with TRL's GRPOTrainer (SPEC section 5).

- ``groups``: the GRPO dataset (one row per group) and the auxiliary episodes' seeds;
- ``chat_tokens``: an episode's chat as TRL's prompt/completion ids with the environment masked;
- ``rollout``: the multi-turn ``rollout_func`` (lockstep episodes of a whole step);
- ``rewards``: the four reward functions, their weights, penalty-only advantages;
- ``trainer``: the small GRPOTrainer subclass for the diagnostics TRL lacks;
- ``checkpoints``: the persistent checkpoint folder, its completeness and ownership;
- ``run``: one training run with checkpoints, resume and the step log;
- ``selection``: the checkpoint with the best training-pool safety J;
- ``ablation``: the penalty-mode ablation.
"""
