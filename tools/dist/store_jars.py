#!/usr/bin/env python3
"""Rewrites every .jar and .war under a folder (and the jars inside wars) as ZIP_STORED, so that
one xz pass over the whole tree finds the redundancy that per-file deflate hides."""
import io
import os
import sys
import zipfile


def stored(data):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zi, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zo:
        for item in zi.infolist():
            body = zi.read(item.filename)
            if item.filename.endswith(".jar"):
                body = stored(body)
            zo.writestr(item, body, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith((".jar", ".war")):
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                data = stored(fh.read())
            with open(p, "wb") as fh:
                fh.write(data)
