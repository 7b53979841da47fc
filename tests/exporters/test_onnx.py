"""The ONNX exporter's own logging: quiet at INFO, warnings and errors kept."""

import logging

import pytest

from dinolab.exporters.onnx import quiet_exporter_logs


def test_exporter_info_lines_are_dropped_and_warnings_kept(caplog):
    child = logging.getLogger("onnx_ir.passes.common.initializer_deduplication")
    chatty = logging.getLogger("onnxscript.rewriter.test_own_level")
    chatty.setLevel(logging.DEBUG)  # a child with a lower level of its own
    try:
        with caplog.at_level(logging.INFO), quiet_exporter_logs():
            child.info("Replaced initializer 'a' with existing initializer 'b'")
            chatty.info("Applied 11 of general pattern rewrite rules.")
            child.warning("a real problem")
            logging.getLogger("dinolab").info("ONNX export for 32x32 inputs only")
        assert [r.getMessage() for r in caplog.records] == [
            "a real problem", "ONNX export for 32x32 inputs only"
        ]  # fmt: skip
        assert chatty.level == logging.DEBUG  # levels restored after the export
        assert logging.getLogger("onnx_ir").level == logging.NOTSET
    finally:
        chatty.setLevel(logging.NOTSET)


def test_levels_come_back_after_an_error():
    with pytest.raises(RuntimeError), quiet_exporter_logs():
        assert logging.getLogger("onnxscript").level == logging.WARNING
        raise RuntimeError("export failed")
    assert logging.getLogger("onnxscript").level == logging.NOTSET
