"""What turns a domain on, off, frozen or thawed: the VM driver, one small interface.

A plan's ``boot``, ``suspend-domain``, ``resume-domain`` and ``shutdown`` act on virtual
machines, which the PBS server knows nothing of; the adapter asks a :class:`VMDriver`. The
libvirt driver is the next issue's; this one ships the interface and
:class:`ExternalDriver`, for sites whose domains are managed outside vmsched (Magrathea's
own daemons, a site's scripts watching the node notes): it only records what vmsched
decided, which the adapter publishes on the node (note or comment, and offline), where the
site's tooling and admins read it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from vmsched.model import Domain

__all__ = ["Power", "DriverError", "VMDriver", "ExternalDriver"]


class Power(enum.Enum):
    """A domain as its hypervisor sees it. *active* holds the host's CPU and memory (free
    or running, for the scheduler); *paused* does not (occupied or suspended)."""

    ACTIVE = "active"
    PAUSED = "paused"
    BOOTING = "booting"
    STOPPING = "stopping"
    OFF = "off"


class DriverError(RuntimeError):
    """The driver could not do what was asked; the message says why, in one line."""


class VMDriver:
    """Boot, suspend, resume, shut down and list domains. Each call either does what it
    says or raises :class:`DriverError` having changed nothing, so the adapter can roll a
    domain switch back."""

    name = "driver"

    def list(self) -> Mapping[str, Power]:
        """The domains this driver knows, and their power state."""
        raise NotImplementedError

    def boot(self, domain: Domain) -> None:
        raise NotImplementedError

    def suspend(self, name: str) -> None:
        raise NotImplementedError

    def resume(self, name: str) -> None:
        raise NotImplementedError

    def shutdown(self, name: str) -> None:
        raise NotImplementedError


class ExternalDriver(VMDriver):
    """Domains managed outside vmsched: records vmsched's decisions, touches no VM.

    What it knows after a restart of vmsched-pbs is what the nodes say (the state vmsched
    published there): the adapter hands it over with :meth:`adopt`. It cannot create a
    domain, so a ``boot`` fails with a reason the admin reads in the log."""

    name = "external"

    def __init__(self, states: Mapping[str, Power] | None = None):
        self._states: dict[str, Power] = dict(states or {})

    def list(self) -> Mapping[str, Power]:
        return dict(self._states)

    def adopt(self, name: str, power: Power) -> None:
        """Take over a domain in the state the server's node says it is in."""
        self._states[name] = power

    def forget(self, name: str) -> None:
        self._states.pop(name, None)

    def boot(self, domain: Domain) -> None:
        raise DriverError(f"cannot boot {domain.name}: domains are managed outside vmsched (driver external); "
                          "set dynamic_boot = false in the policy, or use a driver that boots VMs")

    def suspend(self, name: str) -> None:
        self._states[name] = Power.PAUSED

    def resume(self, name: str) -> None:
        self._states[name] = Power.ACTIVE

    def shutdown(self, name: str) -> None:
        self._states[name] = Power.OFF
