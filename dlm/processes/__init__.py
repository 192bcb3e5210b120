"""Discrete forward processes on tokens: masked (absorbing) and uniform."""

from dlm.errors import ConfigError
from dlm.processes.base import DiscreteProcess, check_time
from dlm.processes.masked import MaskedProcess
from dlm.processes.uniform import UniformProcess
from dlm.schedules import get_schedule

PROCESSES = {"masked": MaskedProcess, "uniform": UniformProcess}


def get_process(name: str, vocab_size: int, schedule="loglinear") -> DiscreteProcess:
    """A process by name ("masked" or "uniform") over ``vocab_size`` real tokens."""
    if name not in PROCESSES:
        raise ConfigError(f"unknown process {name!r}", hint=f"choose one of {', '.join(PROCESSES)}")
    return PROCESSES[name](vocab_size, schedule)




def process_from_config(config) -> DiscreteProcess:
    """The forward process a model config was trained with (``process``, ``num_real_tokens``, schedule fields)."""
    schedule = get_schedule(config.noise_schedule, **config.schedule_kwargs)
    return get_process(config.process, config.num_real_tokens, schedule)

__all__ = ["DiscreteProcess", "MaskedProcess", "UniformProcess", "get_process", "process_from_config", "check_time", "PROCESSES"]
