"""Which Slurm job and task this process runs in: read from its environment, with nothing
imported (the training code records it in meta.json; the Slurm backend imports sweep and
train, so this piece lives apart from it)."""

from __future__ import annotations

import os


def slurm_ids() -> dict | None:
    """{"job_id": ..., "array_task_id": ...} of the Slurm task this process runs in (the
    array's job id for an array task; array_task_id None for a plain job), or None outside
    Slurm."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID", "").isdigit():
        return {"job_id": env["SLURM_ARRAY_JOB_ID"],
                "array_task_id": int(env["SLURM_ARRAY_TASK_ID"])}
    if env.get("SLURM_JOB_ID"):
        return {"job_id": env["SLURM_JOB_ID"], "array_task_id": None}
    return None
