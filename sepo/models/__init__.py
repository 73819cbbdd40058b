"""Policy models: the embedded tiny model and loading any checkpoint by path."""
