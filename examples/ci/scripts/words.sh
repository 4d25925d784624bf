#!/bin/sh
# A stand-in for a slow download: the words of a short text, one a line.
for word in the quick brown fox jumps over the lazy dog the fox sleeps; do
    echo "$word"
done
