"""DINOv2's student and teacher: DINO on CLS tokens, iBOT on masked patches, KoLeo on CLS.

The student sees every crop, its global crops with iBOT block masks (masked patches become the
mask token; the batch carries the masks, drawn by the data pipeline: `data.masking`, bound
into `data.collate.collate_multicrop`); the teacher, an EMA copy without stochastic depth, sees
the unmasked global crops.
The DINO and iBOT heads are separate (DINOv2) unless `ibot.separate_head` is false, and both sit
under `network.head` ({"dino", "ibot"}) so freezing every `last_layer` reaches both.
With `gram.weight` > 0 a Gram teacher (`gram_anchor`, DINOv3) anchors the similarities of the
student's global-crop patch features (`losses.gram`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dinolab.config.schema import Config, ModelConfig
from dinolab.losses import DINOLoss, IBOTPatchLoss, gram_loss, koleo_loss
from dinolab.models import build_backbone, build_head
from dinolab.train.gram_anchor import GramAnchor
from dinolab.train.meta_arch import StudentTeacher

# facebookresearch/dinov2 initialises the CLS token at std 1e-6 (DINO: 0.02).
DINOV2_CLS_TOKEN_STD = 1e-6


class DINOv2Network(nn.Module):
    """Backbone + {"dino": head, "ibot": head (absent when shared)}."""

    def __init__(self, backbone: nn.Module, dino_head: nn.Module, ibot_head: nn.Module | None):
        super().__init__()
        self.backbone = backbone
        heads = {"dino": dino_head} if ibot_head is None else {"dino": dino_head, "ibot": ibot_head}
        self.head = nn.ModuleDict(heads)

    @property
    def ibot_head(self) -> nn.Module:
        return self.head["ibot"] if "ibot" in self.head else self.head["dino"]

    def heads(self, cls: Tensor, patches: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(DINO logits of cls, iBOT logits of patches); one call when the head is shared."""
        if patches is None:
            return self.head["dino"](cls), None
        if "ibot" in self.head:
            return self.head["dino"](cls), self.head["ibot"](patches)
        logits = self.head["dino"](torch.cat([cls, patches]))
        return logits[: cls.shape[0]], logits[cls.shape[0] :]


class DINOv2MetaArch(StudentTeacher):
    """Everything with weights in a DINOv2 run: student, teacher and the losses' centres."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.use_ibot = cfg.ibot.weight > 0
        if cfg.model.arch.startswith("resnet") and (self.use_ibot or cfg.model.pack_sequences):
            raise ValueError(
                "iBOT and sequence packing need a ViT backbone: set model.arch=vit_* or "
                "ibot.weight=0 and model.pack_sequences=false."
            )
        self._build_student_teacher(self._network, cfg.model)
        loss = cfg.loss
        self.dino_loss = DINOLoss(
            cfg.head.out_dim, loss.student_temp, loss.center_momentum, loss.centering,
            loss.sinkhorn_iterations,
        )  # fmt: skip
        if self.use_ibot:
            ibot_dim = cfg.ibot.head.out_dim if cfg.ibot.separate_head else cfg.head.out_dim
            self.ibot_loss = IBOTPatchLoss(
                ibot_dim, loss.student_temp, cfg.ibot.center_momentum, loss.centering,
                loss.sinkhorn_iterations,
            )  # fmt: skip
        self.gram_anchor = None
        if cfg.gram.weight > 0:
            self.gram_anchor = GramAnchor(cfg.gram, self.teacher.backbone)

    def _network(self, model_cfg: ModelConfig) -> DINOv2Network:
        backbone = build_backbone(model_cfg, cls_token_std=DINOV2_CLS_TOKEN_STD)
        dino = build_head(self.cfg.head, backbone.embed_dim)
        ibot = None
        if self.use_ibot and self.cfg.ibot.separate_head:
            ibot = build_head(self.cfg.ibot.head, backbone.embed_dim)
        return DINOv2Network(backbone, dino, ibot)

    def _features(self, net: DINOv2Network, xs: list[Tensor], masks: list) -> list[dict]:
        backbone = net.backbone
        if hasattr(backbone, "forward_features_list"):
            return backbone.forward_features_list(xs, masks, packed=self.cfg.model.pack_sequences)
        return [{"x_norm_clstoken": backbone(x)} for x in xs]  # ResNet: CLS only

    def forward_loss(self, batch: dict, teacher_temp: float) -> dict[str, Tensor]:
        """One DINOv2 step's loss (`loss`) and detached parts and monitors."""
        g = batch["global_crops"]
        local = batch.get("local_crops")
        masks = masked = None
        if self.use_ibot:
            masks = _batch_masks(batch, g.shape[0], self.student.backbone)
            # Indices of the masked patches in `masks[masks]` order, found once (one sync)
            # for both networks' patch tokens.
            masked = masks.flatten().nonzero().squeeze(1)
        with torch.no_grad():
            t = self._features(self.teacher, [g], [None])[0]
            t_patch = _gather(t["x_norm_patchtokens"], masked)
            t_dino, t_ibot = self.teacher.heads(t["x_norm_clstoken"], t_patch)
        xs, ms = [g], [masks]
        if local is not None and local.numel() > 0:
            xs, ms = [g, local], [masks, None]
        s = self._features(self.student, xs, ms)
        s_cls = torch.cat([o["x_norm_clstoken"] for o in s])
        s_patch = _gather(s[0]["x_norm_patchtokens"], masked)
        s_dino, s_ibot = self.student.heads(s_cls, s_patch)

        total, out = self._dino_and_koleo(s_dino, t_dino, s_cls[: g.shape[0]], teacher_temp)
        gram = self.gram_anchor
        if gram is not None and gram.weight_now > 0:
            patch = self.student.backbone.patch_size
            g_loss = gram_loss(
                s[0]["x_norm_patchtokens"], gram.patch_targets(g, patch), gram.cfg.remove_negative
            )
            total = total + gram.weight_now * g_loss
            out["gram_loss"] = g_loss.detach()
        if masks is not None:
            total, masked_fraction = self._add_ibot(total, out, s_ibot, t_ibot, masks, teacher_temp)
            out["masked_fraction"] = masked_fraction
        out["loss"] = total
        return out

    def _dino_and_koleo(
        self,
        s_dino: Tensor,
        t_dino: Tensor,
        s_global_cls: Tensor,
        teacher_temp: float,
        update_center: bool = True,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted DINO loss (+ KoLeo on each global crop's CLS) and its monitors
        (`update_center=False`: the EMA centre stays, for students sharing one teacher)."""
        dino = self.dino_loss(s_dino, t_dino, teacher_temp, n_global=2, update_center=update_center)
        total = self.cfg.loss.dino_weight * dino["loss"]
        out = {k: v for k, v in dino.items() if k != "loss"}
        out["dino_loss"] = dino["loss"].detach()
        if self.cfg.loss.koleo_weight > 0:
            koleo = sum(koleo_loss(c) for c in s_global_cls.chunk(2))
            total = total + self.cfg.loss.koleo_weight * koleo
            out["koleo_loss"] = koleo.detach()
        return total, out

    def _add_ibot(
        self,
        total: Tensor,
        out: dict,
        s_ibot: Tensor,
        t_ibot: Tensor,
        masks: Tensor,
        temp: float,
        update_center: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """`total` + the weighted iBOT loss (monitors into `out`), and the masked fraction."""
        ibot = self.ibot_loss(s_ibot, t_ibot, masks, temp, update_center=update_center)
        out["ibot_loss"] = ibot["loss"].detach()
        out["ibot_teacher_entropy"] = ibot["ibot_teacher_entropy"]
        return total + self.cfg.ibot.weight * ibot["loss"], ibot["masked_fraction"]


def _batch_masks(batch: dict, n_crops: int, backbone: nn.Module) -> Tensor:
    """The batch's iBOT masks [n_crops, patches] as bool; a clear error when they are missing."""
    masks = batch.get("masks")
    patches = (batch["global_crops"].shape[-1] // backbone.patch_size) ** 2
    if masks is None or tuple(masks.shape) != (n_crops, patches):
        got = "none" if masks is None else f"shape {tuple(masks.shape)}"
        raise ValueError(
            f"iBOT (ibot.weight > 0) needs batch['masks'] of shape ({n_crops}, {patches}), got "
            f"{got}: build batches with data.collate_multicrop(samples, "
            "masks=data.IBOTBatchMasks.from_config(cfg))."
        )
    return masks.bool()


def _gather(patch_tokens: Tensor, masked: Tensor | None) -> Tensor | None:
    """The rows of patch_tokens [N, P, D] at the flat indices `masked` -> [M, D]."""
    return None if masked is None else patch_tokens.flatten(0, 1)[masked]
