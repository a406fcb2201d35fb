"""``python -m midstream``: the same as the ``midstream`` command."""

from midstream.cli.commands import main

if __name__ == "__main__":
    main()
