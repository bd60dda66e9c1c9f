"""Generates calibd._proto from the repository's protos (protoc + Debian's grpc_python_plugin),
then builds as pyproject.toml says. Runs before setuptools looks at the package folders, since
it lists calibd._proto.
"""
import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("CALIBD_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))

if os.path.isdir(os.path.join(PROTO_DIR, "calibd")):
    sys.path.insert(0, HERE)
    import gen_proto  # noqa: E402

    gen_proto.generate(PROTO_DIR, os.path.join(HERE, "calibd"))
elif not os.path.exists(os.path.join(HERE, "calibd", "_proto", "types_pb2.py")):
    raise SystemExit(f"no protos at {PROTO_DIR}: set CALIBD_PROTO_DIR to the repository's proto/")

setup()
