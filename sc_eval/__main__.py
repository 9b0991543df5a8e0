"""``python -m sc_eval`` — same as the ``sc-eval`` command."""

from sc_eval.cli import main

if __name__ == "__main__":
    main()
