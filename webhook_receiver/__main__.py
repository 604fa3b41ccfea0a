"""`python -m webhook_receiver` is `dumont-receiver`."""
import sys

from webhook_receiver.cli import main

sys.exit(main())
