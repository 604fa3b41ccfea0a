"""dumont-rules: the alerting spec (YAML here) and the generator that validates and renders it."""
