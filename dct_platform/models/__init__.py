"""Core records. Feature packages define their own models on the same metadata."""

from dct_platform.models.activities import RemoteActivity
from dct_platform.models.audit import AuditAction, AuditChainHead, AuditEntry
from dct_platform.models.events import DeliveryStatus, DomainEvent, EventDelivery
from dct_platform.models.jobs import JobRun
from dct_platform.models.outbox import MailOutbox, OutboxStatus
from dct_platform.models.patients import (
    Patient,
    PatientIdentity,
    PatientSiteAssignment,
    PatientStatus,
    PatientStatusChange,
    PatientTimezonePeriod,
)
from dct_platform.models.signatures import ElectronicSignature
from dct_platform.models.trials import (
    Site,
    SiteInvestigatorPeriod,
    Sponsor,
    Trial,
    TrialPhase,
    TrialStatus,
)
from dct_platform.models.users import (
    ApiToken,
    LoginThrottle,
    SiteMembership,
    TrialAccess,
    User,
)
from dct_platform.models.web_sessions import WebSession

__all__ = [
    "ApiToken",
    "AuditAction",
    "AuditChainHead",
    "AuditEntry",
    "DeliveryStatus",
    "DomainEvent",
    "ElectronicSignature",
    "EventDelivery",
    "JobRun",
    "LoginThrottle",
    "MailOutbox",
    "OutboxStatus",
    "Patient",
    "PatientIdentity",
    "PatientSiteAssignment",
    "PatientStatus",
    "PatientStatusChange",
    "PatientTimezonePeriod",
    "RemoteActivity",
    "Site",
    "SiteInvestigatorPeriod",
    "SiteMembership",
    "Sponsor",
    "Trial",
    "TrialAccess",
    "TrialPhase",
    "TrialStatus",
    "User",
    "WebSession",
]
