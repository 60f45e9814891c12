"""The command line shared by the checking scripts that run the compiler:
their own options, then `--`, then the compiler command as Meson gives it
(cc.cmd_array(): a launcher such as ccache may come first)."""
import sys


def parse(parser, usage):
    """(options, compiler command) from sys.argv; exits with `usage` when
    the `--` is missing."""
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(usage)
    split = argv.index("--")
    return parser.parse_args(argv[:split]), argv[split + 1:]
