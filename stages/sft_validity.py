"""DVC stage `sft_validity`: invalid-action rate of the base and the SFT policy per domain.

    python stages/sft_validity.py --params params.yaml --base data/models/base \
        --model data/models/sft --out metrics/sft_validity.json

Plays at least ``sft_validity.min_decisions`` decisions per domain inside full
episodes against every pool's opponents, sampling with ``generation`` (the
evaluation temperature), for each model, and writes both rates per domain,
with the SFT model's copy probe (``sepo.copy_probe``: does it read numbers
from its context) and the stage's wall time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from sepo.config import load_params
from sepo.errors import ConfigError
from sepo.io import write_json_atomic
from sepo.stage import Stage


def main(argv: Sequence[str] | None = None) -> int:
    stage = Stage("sft_validity", __doc__)
    parser = stage.parser
    parser.add_argument("--base", default="data/models/base", help="base model (default: data/models/base)")
    parser.add_argument("--model", default="data/models/sft", help="SFT model (default: data/models/sft)")
    parser.add_argument("--probe-data", default="data/sft/neg_items/valid.parquet",
                        help="copy-probe examples (default: data/sft/neg_items/valid.parquet)")
    parser.add_argument("--out", default="metrics/sft_validity.json",
                        help="metrics JSON (default: metrics/sft_validity.json)")
    args = stage.parse(argv)
    try:
        params = load_params(args.params)
        import torch

        from sepo.policies.model import load_model_policy
        from sepo.validity import measure_validity, validity_specs

        if params.sft.num_threads:
            torch.set_num_threads(params.sft.num_threads)
        policies = {name: load_model_policy(path, params) for name, path in (("base", args.base),
                                                                             ("sft", args.model))}
    except ConfigError as exc:
        return stage.input_error(exc)
    total = len(validity_specs(params, params.sft_validity.min_decisions, params.sft_validity.seed))
    rates, seconds = {}, {}
    for name, policy in policies.items():
        start = time.perf_counter()
        with tqdm(desc=f"{name} decisions", unit="decision", disable=None) as bar:
            rates[name] = measure_validity(params, policy, on_step=bar.update)
        seconds[name] = round(time.perf_counter() - start, 1)
    games = sorted(rates["sft"])
    out = {
        "episodes": total,
        "temperature": params.generation.temperature,
        "max_new_tokens": params.generation.max_new_tokens,
        "seconds": seconds,
        "domains": {g: {"decisions": rates["sft"][g]["decisions"],
                        "base_invalid_rate": rates["base"][g]["invalid_rate"],
                        "sft_invalid_rate": rates["sft"][g]["invalid_rate"]} for g in games},
        "max_sft_invalid_rate": max(rates["sft"][g]["invalid_rate"] for g in games),
    }
    from sepo.copy_probe import copy_probe, probe_rows

    sft = policies["sft"]
    out["copy_probe"] = copy_probe(sft.model, sft.tokenizer,
                                   probe_rows(args.probe_data, params.sft_validity.copy_probe_examples))
    out["wall_time_s"] = stage.wall_time_s()
    write_json_atomic(args.out, out)
    for g in games:
        d = out["domains"][g]
        print(f"{g:18s} decisions={d['decisions']:4d}  invalid: base {d['base_invalid_rate']:.1%}  "
              f"sft {d['sft_invalid_rate']:.1%}")
    for name, r in out["copy_probe"].items():
        print(f"copy probe {name}: first mention {r['first_nats']:.3f} nats, repeated {r['repeated_nats']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
