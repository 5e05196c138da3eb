"""Entry point: ``python app.py --serve`` serves the web app; ``python app.py --help`` lists the commands."""

import sys

from studyapp.cli import main

if __name__ == "__main__":
    sys.exit(main())
