"""Build the nequip-train (Hydra) config of one member from its resolved settings.

The layout follows the tested configs in the shared notes (nequip 0.19.1, nequip-allegro 0.8.3):
ASEDataModule on explicit train/val/test files, EMA training module, EnergyForce(Stress)Loss with
per-atom energy, ReduceLROnPlateau, EarlyStopping and ModelCheckpoint on the validation score WS
(``val0_epoch/weighted_sum`` with the score weights λ as metric coefficients), CSVLogger and the
TestTimeXYZFileWriter whose predictions ionflow turns into metrics and parity plots.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MONITOR = "val0_epoch/weighted_sum"


def build(spec: dict, *, train_file: str, val_file: str, test_file: str, type_names: list[str],
          with_stress_metrics: bool, accelerator: str) -> dict[str, Any]:
    """The nequip config as a plain dict (``${...}`` strings are resolved by Hydra/nequip)."""
    hp = spec["hparams"]
    loss_c = spec["loss"]
    lam = spec["score_weights"]
    use_stress_loss = loss_c["stress"] > 0
    if use_stress_loss:
        loss = {"_target_": "nequip.train.EnergyForceStressLoss", "per_atom_energy": True,
                "coeffs": {"total_energy": loss_c["energy"], "forces": loss_c["forces"],
                           "stress": loss_c["stress"]}}
    else:
        loss = {"_target_": "nequip.train.EnergyForceLoss", "per_atom_energy": True,
                "coeffs": {"total_energy": loss_c["energy"], "forces": loss_c["forces"]}}
    coeffs = {"per_atom_energy_mae": lam["energy"], "forces_mae": lam["forces"]}
    if with_stress_metrics:
        coeffs["stress_mae"] = lam["stress"]
        metrics = {"_target_": "nequip.train.EnergyForceStressMetrics", "coeffs": coeffs}
    else:
        metrics = {"_target_": "nequip.train.EnergyForceMetrics", "coeffs": coeffs}
    if sum(coeffs.values()) <= 0:
        coeffs["forces_mae"] = 1.0  # the monitor needs some weight; recorded in the config

    model = {
        "_target_": "allegro.model.AllegroModel",
        "seed": spec["seed"],
        "model_dtype": hp["model_dtype"],
        "type_names": list(type_names),
        "r_max": float(hp["r_max"]),
        "radial_chemical_embed": {
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": hp["num_bessels"],
            "bessel_trainable": False,
            "polynomial_cutoff_p": hp["polynomial_cutoff_p"],
        },
        "radial_chemical_embed_dim": hp["radial_chemical_embed_dim"],
        "scalar_embed_mlp_hidden_layers_depth": hp["scalar_embed_mlp_depth"],
        "scalar_embed_mlp_hidden_layers_width": hp["scalar_embed_mlp_width"],
        "scalar_embed_mlp_nonlinearity": "silu",
        "l_max": hp["l_max"],
        "parity": hp["parity"],
        "num_layers": hp["num_layers"],
        "num_scalar_features": hp["num_scalar_features"],
        "num_tensor_features": hp["num_tensor_features"],
        "allegro_mlp_hidden_layers_depth": hp["allegro_mlp_depth"],
        "allegro_mlp_hidden_layers_width": hp["allegro_mlp_width"],
        "allegro_mlp_nonlinearity": "silu",
        "tp_path_channel_coupling": hp["tp_path_channel_coupling"],
        "readout_mlp_hidden_layers_depth": hp["readout_mlp_depth"],
        "readout_mlp_hidden_layers_width": hp["readout_mlp_width"],
        "readout_mlp_nonlinearity": "silu",
        "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
        "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
        "per_type_energy_scales": "${training_data_stats:forces_rms}",
        "per_type_energy_scales_trainable": False,
        "per_type_energy_shifts_trainable": False,
    }
    model.update(hp.get("model_extra") or {})

    trainer: dict[str, Any] = {
        "_target_": "lightning.Trainer",
        "accelerator": accelerator,
        "devices": 1,
        "max_epochs": hp["max_epochs"],
        "check_val_every_n_epoch": 1,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "enable_model_summary": True,
        "logger": [{"_target_": "lightning.pytorch.loggers.CSVLogger",
                    "save_dir": "${hydra:runtime.output_dir}", "name": "csv"}],
        "callbacks": [
            {"_target_": "lightning.pytorch.callbacks.EarlyStopping", "monitor": MONITOR,
             "min_delta": hp["min_delta"], "patience": hp["patience"]},
            {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "monitor": MONITOR,
             "dirpath": "${hydra:runtime.output_dir}", "filename": "best", "save_last": True},
            {"_target_": "nequip.train.callbacks.TestTimeXYZFileWriter",
             "out_file": "${hydra:runtime.output_dir}/test_pred",
             "output_fields_from_original_dataset": ["total_energy", "forces"]
             + (["stress"] if with_stress_metrics else []),
             "chemical_symbols": list(type_names)},
        ],
    }
    if hp.get("max_time"):
        trainer["max_time"] = hp["max_time"]

    return {
        "run": ["train", "test"],
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "seed": spec["seed"],
            "train_file_path": train_file,
            "val_file_path": val_file,
            "test_file_path": test_file,
            "transforms": [
                {"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                 "model_type_names": list(type_names)},
                {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": float(hp["r_max"])},
            ],
            "train_dataloader": {"_target_": "torch.utils.data.DataLoader",
                                 "batch_size": hp["batch_size"], "shuffle": True},
            "val_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": hp["eval_batch_size"]},
            "test_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": hp["eval_batch_size"]},
            "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager",
                              "type_names": list(type_names),
                              "dataloader_kwargs": {"batch_size": hp["eval_batch_size"]}},
        },
        "trainer": trainer,
        "training_module": {
            "_target_": "nequip.train.EMALightningModule",
            "ema_decay": hp["ema_decay"],
            "loss": loss,
            "val_metrics": metrics,
            "train_metrics": metrics,
            "test_metrics": metrics,
            "optimizer": {"_target_": "torch.optim.Adam", "lr": hp["lr"]},
            "lr_scheduler": {
                "scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
                              "factor": hp["lr_factor"], "patience": hp["lr_patience"]},
                "monitor": MONITOR, "interval": "epoch", "frequency": 1,
            },
            "model": model,
        },
    }


def restart_key(cfg: dict) -> str:
    """Hash of everything that must match for a checkpoint to be resumed.

    max_epochs/max_time may grow; the data files enter by content (sha256), not by path, so a
    moved results tree still resumes.
    """
    from ..provenance import file_sha256

    c = json.loads(json.dumps(cfg))
    c["trainer"].pop("max_epochs", None)
    c["trainer"].pop("max_time", None)
    for k in ("train_file_path", "val_file_path", "test_file_path"):
        p = c["data"].get(k)
        if isinstance(p, str):
            try:
                c["data"][k] = file_sha256(p)
            except FileNotFoundError:
                pass
    return hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:16]
