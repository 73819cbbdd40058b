"""Policies: scripted strategies (opponents, demonstrators) and model policies."""
