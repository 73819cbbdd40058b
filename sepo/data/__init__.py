"""SFT data: demonstrator episodes turned into chat datasets, their card and their validation.

- ``reasoning``: the templated reply a demonstrator gives at each decision;
- ``sft``: plays the demonstrator episodes and builds the example tables;
- ``schema``: the column layout shared by the writer, the card and the checks;
- ``files``: deterministic Parquet bytes and atomic writes;
- ``card``: the Hub dataset card (README.md with its YAML header);
- ``validation``: the Great Expectations suites and their JSON report.
"""
