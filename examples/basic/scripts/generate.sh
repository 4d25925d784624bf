#!/bin/sh
# Emits a few words, one per line.
for w in make ninja flowmake doit flowmake dvc flowmake snakemake ninja make flowmake; do
  echo "$w"
done
