"""rules_src package."""
