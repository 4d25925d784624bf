from flowmake.resident.client import run

run()
