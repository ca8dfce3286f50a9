"""Finding, checking, caching and loading image/mask pairs."""
