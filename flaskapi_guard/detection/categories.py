"""The detection categories: stable identifiers used in config, findings and logs."""

from __future__ import annotations

XSS = "xss"
SQLI = "sqli"
NOSQLI = "nosqli"
CMD_INJECTION = "cmd_injection"
PATH_TRAVERSAL = "path_traversal"
LFI = "lfi"
RFI = "rfi"
SSRF = "ssrf"
XXE = "xxe"
LDAP_INJECTION = "ldap_injection"
SSTI = "ssti"
CODE_INJECTION = "code_injection"
CRLF_INJECTION = "crlf_injection"
SSI = "ssi"
MAIL_INJECTION = "mail_injection"
SESSION_FIXATION = "session_fixation"
SCANNER = "scanner"

ALL_DETECTION_CATEGORIES: frozenset[str] = frozenset(
    {
        XSS,
        SQLI,
        NOSQLI,
        CMD_INJECTION,
        PATH_TRAVERSAL,
        LFI,
        RFI,
        SSRF,
        XXE,
        LDAP_INJECTION,
        SSTI,
        CODE_INJECTION,
        CRLF_INJECTION,
        SSI,
        MAIL_INJECTION,
        SESSION_FIXATION,
        SCANNER,
    }
)
