from flowmake.cli.main import run

run()
