"""Export for nn~ / nn.ar: the scripted streaming module and the verified export procedure."""
from vschaos.export.export import ExportVerificationError, export_model, save_verified, script_model
from vschaos.export.module import PHASE_MODES, StreamingVAE, label_ids

__all__ = ["ExportVerificationError", "PHASE_MODES", "StreamingVAE", "export_model", "label_ids", "save_verified",
           "script_model"]
