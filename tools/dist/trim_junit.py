#!/usr/bin/env python3
"""Trims the JUnit console launcher to what the CUDA tests use on the GPU machine (Jupiter only: no
JUnit 4, Vintage, Suite or Hamcrest), so that it fits in one carry with the distribution and the
test classes (64 MiB).   usage: trim_junit.py SRC.jar DST.jar"""
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
drop = ("org/junit/vintage/", "org/hamcrest/", "junit/", "org/junit/platform/suite/")
def junit4(n):  # JUnit 4 lives in org/junit/ directly, next to jupiter/ and platform/
    return n.startswith("org/junit/") and not n.startswith(("org/junit/jupiter/", "org/junit/platform/"))
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zo:
    for i in zi.infolist():
        n = i.filename
        if n.startswith(drop) or junit4(n): continue
        data = zi.read(n)
        if n == "META-INF/services/org.junit.platform.engine.TestEngine":
            data = b"org.junit.jupiter.engine.JupiterTestEngine\n"
        zo.writestr(i, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
