"""Run an experiment notebook with papermill, its prints and progress bars streamed as they come (`make run`).

papermill's own --stdout-file /dev/stdout reopens the terminal's file with its own offset: redirected to a file
(`make run > run.log 2>&1`) it truncates what was written before it and writes NUL bytes where its offset and the
shell's disagree. Here the notebook's output goes to this process's own stdout and stderr, so a terminal, a file and
a pipe each get every line once, in order.

    python scripts/run_notebook.py nbs/certify.ipynb out/certify.ipynb [-p NAME VALUE ...]
"""
import argparse
import sys

import papermill as pm


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook"); ap.add_argument("output")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a parameter, passed as a string: the notebook converts it by its declared type")
    args = ap.parse_args(argv)
    params = dict(args.parameter)
    try:
        pm.execute_notebook(args.notebook, args.output, parameters=params, kernel_name="python3", progress_bar=False,
                            stdout_file=sys.stdout, stderr_file=sys.stderr,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except pm.PapermillExecutionError as e:       # the notebook's own error has been streamed above; say where
        print(f"{args.notebook} failed in cell {e.exec_count}: {e.ename}: {e.evalue} (the executed notebook: "
              f"{args.output})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{args.notebook}: interrupted. Nothing finished is lost: run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
