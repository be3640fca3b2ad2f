"""A tick in its own process, for the kill -9 test: real SMTP, the production wiring."""

from __future__ import annotations

import sys
from datetime import datetime

from touchflow.bootstrap import ticker
from touchflow.settings import Settings


def main() -> None:
    now = datetime.fromisoformat(sys.argv[1])
    batch = int(sys.argv[2])
    tk = ticker(Settings())
    tk.run(now, batch)
    tk.email.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
