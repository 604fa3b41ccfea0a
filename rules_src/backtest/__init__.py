"""`dumont-rules backtest`: replay each alert's rules over a range of real history, through Prometheus's
query_range, with Prometheus's own pending/firing/keep_firing_for logic, and count what Alertmanager's grouping
would have sent (cli.py -> plan.py -> fetch.py -> replay.py -> notify.py -> report.py)."""
