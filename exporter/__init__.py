"""The dumont exporter."""
