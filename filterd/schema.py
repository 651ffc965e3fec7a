"""Sysmon event schema 4.90: every event type, its rule tag, manifest version and fields in order.

Why a table in code: rendering, the rule engine and `sysmon -s` must agree on the exact
field names and order, and filterd must not read files outside its sandbox to learn them.
Generated from SysmonCommon's manifest.xml (schema 4.81) plus event 100 (schema 4.90);
tests/filterd/test_schema.py checks it against the reference manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = "4.90"

# Events emitted on Linux by this project (the rest are accepted in configs and never fire).
LINUX_EVENT_IDS = frozenset({1, 3, 4, 5, 9, 10, 11, 16, 22, 23, 100})


@dataclass(frozen=True, slots=True)
class EventType:
    """One manifest <event>: what the XML <System> block and the rule engine need."""

    id: int
    name: str
    rule_tag: str | None  # config element; None for 4, 16, 255 (not filterable)
    default_include: bool  # manifest ruledefault: what happens with no rule for this type
    version: int
    template: str
    fields: tuple[str, ...]


EVENT_TYPES: tuple[EventType, ...] = (
    EventType(1, 'SYSMONEVENT_CREATE_PROCESS', 'ProcessCreate', True, 5, 'Process Create',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'FileVersion', 'Description', 'Product', 'Company', 'OriginalFileName', 'CommandLine', 'CurrentDirectory', 'User', 'LogonGuid', 'LogonId', 'TerminalSessionId', 'IntegrityLevel', 'Hashes', 'ParentProcessGuid', 'ParentProcessId', 'ParentImage', 'ParentCommandLine', 'ParentUser')),
    EventType(2, 'SYSMONEVENT_FILE_TIME', 'FileCreateTime', False, 5, 'File creation time changed',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'TargetFilename', 'CreationUtcTime', 'PreviousCreationUtcTime', 'User')),
    EventType(3, 'SYSMONEVENT_NETWORK_CONNECT', 'NetworkConnect', False, 5, 'Network connection detected',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'User', 'Protocol', 'Initiated', 'SourceIsIpv6', 'SourceIp', 'SourceHostname', 'SourcePort', 'SourcePortName', 'DestinationIsIpv6', 'DestinationIp', 'DestinationHostname', 'DestinationPort', 'DestinationPortName')),
    EventType(4, 'SYSMONEVENT_SERVICE_STATE_CHANGE', None, False, 3, 'Sysmon service state changed',
              ('UtcTime', 'State', 'Version', 'SchemaVersion')),
    EventType(5, 'SYSMONEVENT_PROCESS_TERMINATE', 'ProcessTerminate', True, 3, 'Process terminated',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'User')),
    EventType(6, 'SYSMONEVENT_DRIVER_LOAD', 'DriverLoad', False, 4, 'Driver loaded',
              ('RuleName', 'UtcTime', 'ImageLoaded', 'Hashes', 'Signed', 'Signature', 'SignatureStatus')),
    EventType(7, 'SYSMONEVENT_IMAGE_LOAD', 'ImageLoad', False, 3, 'Image loaded',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'ImageLoaded', 'FileVersion', 'Description', 'Product', 'Company', 'OriginalFileName', 'Hashes', 'Signed', 'Signature', 'SignatureStatus', 'User')),
    EventType(8, 'SYSMONEVENT_CREATE_REMOTE_THREAD', 'CreateRemoteThread', False, 2, 'CreateRemoteThread detected',
              ('RuleName', 'UtcTime', 'SourceProcessGuid', 'SourceProcessId', 'SourceImage', 'TargetProcessGuid', 'TargetProcessId', 'TargetImage', 'NewThreadId', 'StartAddress', 'StartModule', 'StartFunction', 'SourceUser', 'TargetUser')),
    EventType(9, 'SYSMONEVENT_RAWACCESS_READ', 'RawAccessRead', False, 2, 'RawAccessRead detected',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'Device', 'User')),
    EventType(10, 'SYSMONEVENT_ACCESS_PROCESS', 'ProcessAccess', False, 3, 'Process accessed',
              ('RuleName', 'UtcTime', 'SourceProcessGUID', 'SourceProcessId', 'SourceThreadId', 'SourceImage', 'TargetProcessGUID', 'TargetProcessId', 'TargetImage', 'GrantedAccess', 'CallTrace', 'SourceUser', 'TargetUser')),
    EventType(11, 'SYSMONEVENT_FILE_CREATE', 'FileCreate', False, 2, 'File created',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'TargetFilename', 'CreationUtcTime', 'User')),
    EventType(12, 'SYSMONEVENT_REG_KEY', 'RegistryEvent', False, 2, 'Registry object added or deleted',
              ('RuleName', 'EventType', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'TargetObject', 'User')),
    EventType(13, 'SYSMONEVENT_REG_SETVALUE', 'RegistryEvent', False, 2, 'Registry value set',
              ('RuleName', 'EventType', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'TargetObject', 'Details', 'User')),
    EventType(14, 'SYSMONEVENT_REG_NAME', 'RegistryEvent', False, 2, 'Registry object renamed',
              ('RuleName', 'EventType', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'TargetObject', 'NewName', 'User')),
    EventType(15, 'SYSMONEVENT_FILE_CREATE_STREAM_HASH', 'FileCreateStreamHash', False, 2, 'File stream created',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'TargetFilename', 'CreationUtcTime', 'Hash', 'Contents', 'User')),
    EventType(16, 'SYSMONEVENT_SERVICE_CONFIGURATION_CHANGE', None, False, 3, 'Sysmon config state changed',
              ('UtcTime', 'Configuration', 'ConfigurationFileHash')),
    EventType(17, 'SYSMONEVENT_CREATE_NAMEDPIPE', 'PipeEvent', False, 1, 'Pipe Created',
              ('RuleName', 'EventType', 'UtcTime', 'ProcessGuid', 'ProcessId', 'PipeName', 'Image', 'User')),
    EventType(18, 'SYSMONEVENT_CONNECT_NAMEDPIPE', 'PipeEvent', False, 1, 'Pipe Connected',
              ('RuleName', 'EventType', 'UtcTime', 'ProcessGuid', 'ProcessId', 'PipeName', 'Image', 'User')),
    EventType(19, 'SYSMONEVENT_WMI_FILTER', 'WmiEvent', False, 3, 'WmiEventFilter activity detected',
              ('RuleName', 'EventType', 'UtcTime', 'Operation', 'User', 'EventNamespace', 'Name', 'Query')),
    EventType(20, 'SYSMONEVENT_WMI_CONSUMER', 'WmiEvent', False, 3, 'WmiEventConsumer activity detected',
              ('RuleName', 'EventType', 'UtcTime', 'Operation', 'User', 'Name', 'Type', 'Destination')),
    EventType(21, 'SYSMONEVENT_WMI_BINDING', 'WmiEvent', False, 3, 'WmiEventConsumerToFilter activity detected',
              ('RuleName', 'EventType', 'UtcTime', 'Operation', 'User', 'Consumer', 'Filter')),
    EventType(22, 'SYSMONEVENT_DNS_QUERY', 'DnsQuery', False, 5, 'Dns query',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'QueryName', 'QueryStatus', 'QueryResults', 'Image', 'User')),
    EventType(23, 'SYSMONEVENT_FILE_DELETE', 'FileDelete', False, 5, 'File Delete archived',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'User', 'Image', 'TargetFilename', 'Hashes', 'IsExecutable', 'Archived')),
    EventType(24, 'SYSMONEVENT_CLIPBOARD', 'ClipboardChange', False, 5, 'Clipboard changed',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'Session', 'ClientInfo', 'Hashes', 'Archived', 'User')),
    EventType(25, 'SYSMONEVENT_PROCESS_IMAGE_TAMPERING', 'ProcessTampering', False, 5, 'Process Tampering',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'Type', 'User')),
    EventType(26, 'SYSMONEVENT_FILE_DELETE_DETECTED', 'FileDeleteDetected', False, 5, 'File Delete logged',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'User', 'Image', 'TargetFilename', 'Hashes', 'IsExecutable')),
    EventType(100, 'SYSMONEVENT_EBPF_EVENT', 'eBPFEvent', False, 1, 'eBPF Program Loaded',
              ('RuleName', 'UtcTime', 'ProcessGuid', 'ProcessId', 'Image', 'User', 'BpfCommand', 'BpfProgramType', 'BpfProgramId', 'BpfProgramName')),
    EventType(255, 'SYSMONEVENT_ERROR', None, False, 3, 'Error report',
              ('UtcTime', 'ID', 'Description')),
)

BY_ID: dict[int, EventType] = {e.id: e for e in EVENT_TYPES}

# Rule tag -> event types sharing it (RegistryEvent 12/13/14, PipeEvent 17/18, WmiEvent 19/20/21).
BY_RULE_TAG: dict[str, tuple[EventType, ...]] = {}
for _e in EVENT_TYPES:
    if _e.rule_tag:
        BY_RULE_TAG[_e.rule_tag] = BY_RULE_TAG.get(_e.rule_tag, ()) + (_e,)
del _e

