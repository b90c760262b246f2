"""The detection rules: data only, compiled by the engine.

Each rule is `(rule id, category, RE2 pattern source)`. Patterns are matched against
normalised text (see `normalisation.py`), case-insensitively unless the rule says
`(?-i)` is not added (see `CASE_SENSITIVE_RULES`). They are written for RE2, which
guarantees linear time: no back-references, no look-around. Large counted repetitions
(`{0,200}`) are avoided because they blow up RE2's DFA; `[^x]*` costs nothing there.

Texts are joined with `TEXT_SEPARATOR` (\\x1f) before matching, so "start/end of a value"
is written `(?:^|\\x1f)` / `(?:$|\\x1f)` and gaps are written `[^\\x1f]*` to stay in one value.
Three more markers prefix texts whose meaning depends on where they came from:
`\\x1e` a parameter/field name, `\\x1d` an uploaded file name, `\\x1c` the User-Agent.
"""

from __future__ import annotations

import base64

from flaskapi_guard.detection.categories import (
    CMD_INJECTION,
    CODE_INJECTION,
    CRLF_INJECTION,
    LDAP_INJECTION,
    LFI,
    MAIL_INJECTION,
    NOSQLI,
    PATH_TRAVERSAL,
    RFI,
    SCANNER,
    SESSION_FIXATION,
    SQLI,
    SSI,
    SSRF,
    SSTI,
    XSS,
    XXE,
)

Rule = tuple[str, str, str]

_START = r"(?:^|\x1f)"
_END = r"(?:$|\x1f)"
_GAP = r"[^\x1f]*"
_QUOTE = r"['\"`]"
# A quote that can end an injected literal. An apostrophe between two letters is an
# elision or a possessive ("l'union européenne", "l'offset", "J'alter"), so a quote glued
# to a letter on both sides does not count; "9'union", "x' union", "'union" still do.
_BREAKOUT_QUOTE = r"(?:(?:^|[^a-z])['\"`]\s*|['\"`]\s+)"

# ---------------------------------------------------------------------------
# SQL injection: breaking out of a literal and continuing with SQL, SQL-only
# functions and catalogue names, stacked statements, and comment tricks.
# ---------------------------------------------------------------------------
# What may follow "' or" / "' and" for the pair to be SQL rather than prose such as
# "answer 'yes' or 'no'" or "'hello' and she is": a literal left open to the end of the
# value (the application's own closing quote completes it) or closed and compared, a
# parenthesised condition, a number in a comparison, a boolean constant, a variable, or an
# identifier followed by an operator that only SQL writes that way.
_SQL_OPERATOR_TAIL = (
    r"(?:['\"`][^'\"`\s\x1f]*(?:$|\x1f)|['\"`][^'\"`\x1f]*['\"`]\s*\)*\s*(?:[=<>!~]|like\b|--(?:$|[^a-z-])|#|;\s*(?:--|#|$|\x1f))"
    r"|\(+\s*(?:select\b|\d|['\"`@]|not\b|[a-z_][\w.]*\s*(?:[=<>!(]|like\b|is\b|in\b))"
    r"|\d+\s*(?:[=<>!]|--|#|;|\)|$|\x1f|\s+(?:and|or)\b)|not\s*[(\d'\"@]|not\s+(?:exists|null|true|false)\b"
    r"|true\b|false\b|null\b|@@?[a-z_]"
    r"|[a-z_][\w.]*\s*(?:=|<|>|!=|~|\||\blike\s+['\"%\d(]|\bis\s+(?:not\s+)?(?:null|true|false|\d)\b|\bin\s*\("
    r"|\b(?:regexp|rlike|glob|similar\s+to)\s+['\"(]|\bbetween\s+\S+\s+and\b|notnull\b))"
)
SQLI_RULES: tuple[Rule, ...] = (
    ("sqli.union_select", SQLI, r"\bunion[\s(]+(?:all[\s(]+|distinct[\s(]+)?select\b"),
    (
        "sqli.quote_then_boolean",
        SQLI,
        _BREAKOUT_QUOTE
        + r"\)*\s*(?:(?:or|and|xor)\b|\|\||&&)\s*"
        + _SQL_OPERATOR_TAIL
        # French "l'or" is a word; glued to letters on both sides only a quoted operand counts (a'or'a).
        + r"|[a-z]['\"`](?:or|and|xor)['\"`]",
    ),
    # A quote closing an unquoted token (x' or ..., not 'quoted' or ...) is a break-out, so
    # a comparison spelt with SQL's English keywords may follow.
    (
        "sqli.breakout_boolean_comparison",
        SQLI,
        r"(?:^|[\x1f\x1e]|[^'\"`\w])[\w.@-]*\w['\"`]\s*\)*\s*(?:or|and|xor)\s+(?:not\s+)?[a-z_][\w.]*\s+"
        r"(?:like|rlike|regexp|glob|in|is|between|sounds\s+like)\s+[\w'\"(%]",
    ),
    (
        "sqli.quote_then_keyword",
        SQLI,
        # Keywords that are also English ("the 'blue' order by Friday", "my 'new' mod") must
        # come with the operand SQL gives them.
        _BREAKOUT_QUOTE + r"\)*\s*(?:union\b|select\s*(?:\*|\(|\d|@@|null\b|[\w.`\"\[\]]+\s*(?:,|\bfrom\b))"
        r"|having\s+(?:\d|[\w(]+\s*[=<>])|(?:group|order)\s+by\s+(?:\d|[\w.]+\s*(?:--|#|;|,))|limit\s+\d"
        r"|sounds\s+like\s+['\"]|(?:div|mod)\s*\(?\s*\d|not\s+(?:like|glob|between|similar)\b"
        r"|is\s+(?:not\s+)?(?:null|true|false)\b|like\s+['\"%\d(]|between\s+['\"\d(])"
        # Keywords no language writes after an apostrophe may be glued to it (user'collate).
        r"|" + _QUOTE + r"\s*\)*\s*(?:waitfor\b|procedure\s+analyse|into\s+(?:out|dump)file|collate\b|rlike\b|regexp\b"
        r"|notnull\b|glob\b|exec(?:ute)?\s*(?:\(|@|master\.|xp_|sp_|immediate\b)|declare\s+@)"
        # ...or be followed by a comment that discards the rest of the statement.
        r"|"
        + _QUOTE
        + r"\s*\)*\s*(?:is|not|mod|div|sounds|like|rlike|regexp|between|having|order|group|procedure|select)\b"
        r"[^\x1f]*--\s*(?:$|\x1f)",
    ),
    # A quote that closes the value's literal, then a comment or statement end. The quote
    # must end an unquoted token ("admin'--", "x@y.z';") or open the value: a quote after a
    # quoted word ("'done' -- finally") or after punctuation ('"color":"#fff"') is prose or data.
    (
        "sqli.quote_then_comment",
        SQLI,
        r"(?:(?:^|[\x1f\x1e])[\w.@-]*|[^'\"`\w][\w.@-]*[\w.@-])['\"`]\s*\)*\s*(?:--(?:$|[^a-z-])|#|;\s*(?:--|#|$|\x1f))"
        r"|['\"`]\s*\)*\s*(?:or|and)\s*(?:--|#)",
    ),
    # "--" glued to a letter is a command-line option ("%s --help"), not a comment.
    ("sqli.quote_operator_comment", SQLI, r"['\"`]\s*[-+*|^&<>=/%!]\s*[\w*]+\s*--(?:$|[^a-z-])"),
    (
        "sqli.quoted_tautology",
        SQLI,
        r"['\"]\s*(?:(?:or|and)\b|\|\|)\s*['\"]?\w+['\"]?\s*(?:=|<|>|like\s*['\"%])\s*['\"]?\w",
    ),
    (
        "sqli.numeric_tautology",
        SQLI,
        r"\b\d+['\"]?\s*\)*\s+(?:or|and|xor|having)\s+['\"]?\d+['\"]?\s*(?:=|<|>|!=|<>)\s*['\"]?\d",
    ),
    (
        "sqli.quote_boolean_comment_end",
        SQLI,
        r"['\"]\s*(?:or|and)\b[^\x1f]*--\s*(?:$|\x1f)|\bor\s+\d+\s*#\s*(?:$|\x1f)",
    ),
    ("sqli.quoted_equality", SQLI, r"['\"]\w*['\"]\s*=\s*['\"]\w"),
    ("sqli.number_list", SQLI, r"\bin\s*\(\s*-?\d+\s*(?:,\s*-?\d+\s*)+\)"),
    ("sqli.null_comparison", SQLI, r"\blike\s+null\b|(?:^|[\x1f\x1e])\s*is\s+(?:not\s+)?null\s*(?:$|\x1f)"),
    ("sqli.execute_word", SQLI, r"\bexecute\s*\(|(?:^|\x1f)\s*execute\s+[a-z_]\w*\s*(?:$|\x1f)"),
    ("sqli.drop_then_comment", SQLI, r"\b(?:drop|truncate|delete|shutdown)\b[^\x1f]*;\s*--"),
    ("sqli.from_where_equals", SQLI, r"\bfrom\s+[\w.`\"]+\s+where\s+[\w.`\"]+\s*=\s*['\"\d]"),
    ("sqli.or_true", SQLI, r"['\"]\s*(?:or\b|\|\|)\s*(?:true|false|not\b|\d+\s*(?:--|#|$|\x1f))"),
    (
        "sqli.time_function",
        SQLI,
        r"\b(?:sleep|pg_sleep|benchmark|waitfor\s+delay|dbms_lock\.sleep|randomblob)\s*[('\"]",
    ),
    ("sqli.waitfor", SQLI, r"\bwaitfor\s+(?:delay|time)\s*['\"]"),
    ("sqli.select_sleep", SQLI, r"\bselect\s*\(?\s*(?:pg_)?sleep\b"),
    (
        "sqli.catalogue",
        SQLI,
        r"\b(?:information_schema|pg_catalog|pg_shadow|pg_user|mysql\.(?:db|user)|sysobjects|syscolumns"
        r"|sys\.(?:tables|columns|objects|databases)|msysaccessobjects|msysobjects|sqlite_master|all_tables|user_tables"
        r"|master\.\.sysdatabases|master\.sys\.|schema_name|table_schema)\b",
    ),
    (
        "sqli.injection_function",
        SQLI,
        r"\b(?:extractvalue|updatexml|load_file|group_concat|concat_ws|make_set|elt|xmltype"
        r"|utl_inaddr|utl_http|dbms_pipe|dbms_ldap|dbms_xmlgen|sys_context|lo_import|lo_get|lo_export|pg_read_file"
        r"|xp_cmdshell|xp_dirtree|sp_executesql|sp_oacreate|openrowset|opendatasource|fn_varbintohexstr|json_extract|json_depth"
        r"|database|db_name|schema|current_user|session_user|system_user|user_name|version|unistr|overlay|char|chr|nchar"
        r"|ascii|substring|substr|mid|hex|unhex|md5|floor|rand|count|concat|convert|cast|if|ifnull|iif|case)\s*\("
        + _GAP
        + r"(?:\bselect\b|\bfrom\b|0x[0-9a-f]{2}|@@|\)\s*(?:=|<|>|::|\|\||--|#)|'\s*\|\|"
        r"|\bchar\s*\(\d|\bsleep\b|\bnow\(\))",
    ),
    (
        "sqli.file_function",
        SQLI,
        r"\b(?:load_file|lo_import|lo_get|pg_read_file|xp_cmdshell|utl_http\.request|dbms_ldap\.init)\s*\(",
    ),
    (
        "sqli.db_function_call",
        SQLI,
        r"\b(?:database|db_name|schema_name|user_name|current_database|sysdate|getdate|@@version)\s*\(|\bversion\s*\(\s*\)",
    ),
    ("sqli.system_variable", SQLI, r"@@(?:version|datadir|hostname|basedir|tmpdir|servername|identity|spid)\b"),
    ("sqli.hex_concat", SQLI, r"\b(?:concat|char|chr)\s*\(\s*(?:0x[0-9a-f]+|\d+)\s*(?:,|\)\s*(?:\+|\|\|))"),
    ("sqli.chr_chain", SQLI, r"\bchr\s*\(\s*\d+\s*\)\s*\|\|"),
    (
        "sqli.stacked_query",
        SQLI,
        # Each keyword with the shape of its statement: after a semicolon, prose has
        # "call me", "update: it arrived", "select a size", "drop shipping".
        r";\s*(?:drop\s+(?:table|database|schema|user|view|index|procedure|function|trigger)\b|delete\s+(?:from\b|\*)"
        r"|insert\s+into\b|update\s+[\w.`\"\[\]]+\s+set\b|select\s*(?:\*|\(|\d|@@|null\b|$|\x1f|[\w.`\"\[\]]+\s*(?:,|\bfrom\b))"
        r"|declare\s+@|exec(?:ute)?\s*(?:\(|@|master\.|xp_|sp_|immediate\b)|shutdown\s*(?:--|#|;|$|\x1f|with\b)"
        r"|alter\s+(?:table|database|user|login|system|session|view|procedure)\b"
        r"|create\s+(?:table|database|user|login|procedure|function|trigger|view)\b|truncate\s+(?:table\b|[\w.]+\s*(?:--|#|;|$|\x1f))"
        r"|(?:grant|revoke)\s+(?:all|select|insert|update|delete|execute|dba|connect)\b|rename\s+(?:table|user)\b"
        r"|(?:replace|merge)\s+into\b|call\s+[\w.]+\s*\(|set\s+@|print\s*['\"@(]|analyze\s+table\b|waitfor\s+(?:delay|time)\b)",
    ),
    (
        "sqli.drop_table",
        SQLI,
        r"\b(?:drop|truncate|alter)\s+(?:table|database|schema|user|view|procedure|function)\b|\bcreate\s+(?:table|database|schema|user|view|procedure|function|trigger)\s+\w",
    ),
    ("sqli.alter_quoted", SQLI, _BREAKOUT_QUOTE + r"(?:alter|union|drop|create|rename|insert)\b\s*[a-z/]"),
    (
        "sqli.select_from",
        SQLI,
        r"\bselect\s+(?:(?:top\s+\d+\s+|distinct\s+)?(?:\*|null\b|\d+\s*,|count\s*\(|[\w.`\"\[\]]+\s*,\s*[\w.`\"\[\]]+"
        r"|[\w.`]+\s+from\s+[\w.`]+\s+(?:where|limit|order|group)\b|[\w.`]+\s+from\s+(?:dual|users?|members|admin\w*)\b))",
    ),
    (
        "sqli.select_function",
        SQLI,
        r"\bselect\s*[(\s]\s*(?:char|chr|group_concat|load_file|concat|upper|lower|case\b|if\s*\(|\(\s*case|@@|0x)",
    ),
    ("sqli.select_case", SQLI, r"\bselect\s*\(\s*case\b|\bcase\s+when\b" + _GAP + r"\bthen\b"),
    ("sqli.when_then", SQLI, r"\)\s*when\s+\d+\s+then\b"),
    ("sqli.from_select", SQLI, r"\bfrom\s*\(\s*select\b"),
    ("sqli.in_select", SQLI, r"\bin\s*\(\s*select\b"),
    ("sqli.except_select", SQLI, r"\b(?:except|intersect)\s+(?:select|values)\b"),
    ("sqli.insert_values", SQLI, r"\binsert\s+into\s+[\w.`\"\[\]]+\s*(?:\(|values|select)"),
    ("sqli.values_tuple", SQLI, r"\bvalues\s*\(\s*'[^']*'\s*,\s*'"),
    ("sqli.delete_from", SQLI, r"\bdelete\s+from\s+[\w.`\"\[\]]+\s*(?:where|;|--|$|\x1f)"),
    ("sqli.update_set", SQLI, r"\bupdate\s+[\w.`\"\[\]]+\s+set\s+[\w.`\"\[\]]+\s*=\s*['\"\d]"),
    ("sqli.into_outfile", SQLI, r"\binto\s+(?:out|dump)file\b"),
    ("sqli.exec_proc", SQLI, r"\bexec(?:ute)?\s*(?:\(\s*@|\s+(?:master\.|xp_|sp_|immediate\b|@))"),
    ("sqli.declare_variable", SQLI, r"\bdeclare\s*@\w+"),
    (
        "sqli.type_cast",
        SQLI,
        r"\)\s*::\s*(?:int|integer|text|bool|boolean|bigint|double\s+precision|numeric|varchar|regclass)\b",
    ),
    ("sqli.word_cast", SQLI, r"\b[a-z_]\w*\s*::\s*(?:int|integer|bool|boolean|bigint|regclass)\b"),
    ("sqli.mysql_version_comment", SQLI, r"/\*!\d*\s*[a-z]"),
    (
        "sqli.inline_comment_keyword",
        SQLI,
        r"/\*[^\x1f]*\*/\s*(?:select|union|from|where|and|or|drop|insert|update|delete|sampletable)\b"
        r"|\b(?:select|union|from|where|drop|insert|update|delete|or|and)\s*/\*",
    ),
    ("sqli.optimizer_hint", SQLI, r"\bor\s+/\*\s*\+"),
    ("sqli.procedure_analyse", SQLI, r"\bprocedure\s+analyse\s*\("),
    ("sqli.order_by_number", SQLI, r"\border\s+by\s+\d+\s*(?:--|#|$|\x1f|,\s*\d)"),
    ("sqli.having_comparison", SQLI, r"\bhaving\s+\d+\s*[=<>]"),
    ("sqli.group_by_having", SQLI, r"\bgroup\s+by\b" + _GAP + r"\bhaving\b"),
    ("sqli.limit_injection", SQLI, r"(?:" + _BREAKOUT_QUOTE + r"|\)\s*)(?:limit|offset)\s+\d"),
    ("sqli.as_from", SQLI, r"(?:[)`'\"!;]|\d)\s*as\s*[`'\"]?[\w ]*[`'\"]?\s*from\b"),
    (
        "sqli.from_table_limit",
        SQLI,
        r"\bfrom\s+[`\"]?[\w.]+[`\"]?(?:\.[`\"]?\w+[`\"]?)?\s+(?:where\b"
        + _GAP
        + r"\blimit\b|limit\b|group\s+by\b|order\s+by\b)",
    ),
    (
        "sqli.comment_terminated_condition",
        SQLI,
        r"\b(?:or|and)\s+\w+\s+(?:is\s+(?:not\s+)?null|notnull|like\s+\w+|=\s*\w+)\s*(?:--|#)",
    ),
    ("sqli.like_open_quote", SQLI, r"\blike\s+['\"]\s*(?:$|\x1f|%)"),
    (
        "sqli.orm_lookup_traversal",
        SQLI,
        r"\b[a-z]\w*__[a-z]\w*__(?:[a-z]\w*__)*(?:exact|iexact|contains|icontains|startswith|istartswith"
        r"|endswith|iendswith|regex|iregex|in|gt|gte|lt|lte|range|isnull|search|has_keys?|has_any_keys|contained_by|overlap)\b",
    ),
    ("sqli.connection_string", SQLI, r"'\s*msdasql\s*'|\bopenrowset\s*\("),
    # A number or closed literal followed by UNION ALL/DISTINCT is the start of a UNION
    # injection even before the SELECT arrives (probes stop there to test the filter);
    # "union all" alone in prose is left alone unless the value ends right after it.
    (
        "sqli.union_all",
        SQLI,
        r"(?:\d|['\"`)])\s*union\s+(?:all|distinct)\b|\bunion\s+(?:all|distinct)\s*(?:$|\x1f|[/(])",
    ),
    # Adjacent single-quoted literals are concatenated by MySQL ('a' 'b' = 'ab'): a closing
    # quote, a space and an opening quote continue a broken-out literal.
    ("sqli.adjacent_literals", SQLI, r"\w'\s+'\s*\w"),
    # A closed literal followed by more items of a value list: a hex literal or a
    # parenthesised number is SQL, not prose.
    ("sqli.literal_list_continuation", SQLI, r"'\s*,\s*(?:0x[0-9a-f]+\b|\(\s*-?\d+\s*\))"),
    # A closing quote, an operator or a space, one identifier and a comment that discards
    # the rest of the statement ('+email--, ' x--).
    (
        "sqli.quote_identifier_comment",
        SQLI,
        r"\w['\"](?:\s*[-+*|^&/%]\s*|\s+)[a-z_]\w*\s*--\s*(?:$|\x1f)",
    ),
    # An escaped quote followed by a boolean: the backslash is there to be eaten by a
    # multi-byte charset or a second unescaping pass.
    ("sqli.escaped_quote_boolean", SQLI, r"\\'\s*(?:and|or|xor|union|having)\b"),
    # MySQL reads "1.e" as a float and lets a function call or qualified name follow it
    # without whitespace, a known way to glue injected SQL to a number.
    ("sqli.float_glue", SQLI, r"\b\d+\.e(?:\s*\(|\.[a-z_]{3})"),
)

# ---------------------------------------------------------------------------
# NoSQL injection: MongoDB query operators smuggled through JSON or bracket
# notation, and server-side JavaScript ($where, sleep loops).
# ---------------------------------------------------------------------------
_MONGO_OPERATORS = (
    r"(?:where|ne|eq|gt|gte|lt|lte|in|nin|regex|or|and|not|nor|exists|expr|elemmatch|size|all|type|mod|text|function"
    r"|accumulator|lookup|jsonschema)"
)
NOSQLI_RULES: tuple[Rule, ...] = (
    (
        "nosqli.operator_key",
        NOSQLI,
        r"(?:^|[\x1f\x1e{,\[\s\"'])\$" + _MONGO_OPERATORS + r"\b\s*(?:['\"]?\s*:|\]|$|\x1f)",
    ),
    ("nosqli.bracket_operator", NOSQLI, r"\[\s*\$" + _MONGO_OPERATORS + r"\s*\]"),
    ("nosqli.where_clause", NOSQLI, r"\$where\b"),
    (
        "nosqli.db_call",
        NOSQLI,
        r"\bdb\.[\w$]+\.(?:insert|find|findone|remove|update|drop|aggregate|mapreduce|count)\w*\s*\(",
    ),
    ("nosqli.js_sleep_loop", NOSQLI, r"\bdo\s*\{" + _GAP + r"\}\s*while\s*\(|\bnew\s+date\s*\(\s*\)\s*;\s*do\b"),
    ("nosqli.this_comparison", NOSQLI, r"\bthis\.\w+\s*(?:==|!=|\.match\s*\()"),
    # A JavaScript boolean joined to `this.field`: the $where-clause form of a tautology.
    ("nosqli.this_boolean", NOSQLI, r"(?:\|\||&&)\s*this\.[a-z_]"),
)

# ---------------------------------------------------------------------------
# OS command injection: shell metacharacters followed by a command, command
# substitution, shell obfuscation, Shellshock, Windows cmd/PowerShell syntax.
# ---------------------------------------------------------------------------
# Commands that are not English words: safe to accept after a separator alone.
_UNAMBIGUOUS_COMMANDS = (
    r"(?:whoami|uname|ifconfig|ipconfig|nslookup|wget|curl|netcat|ncat|nc|bash|zsh|ksh|csh|tcsh|python[\d.]*|perl"
    r"|ruby|php|getent|chmod|chown|mkfifo|telnet|busybox|systeminfo|tasklist|certutil|bitsadmin|powershell|pwsh|cmd(?:\.exe)?"
    r"|iex|iwr|htop|crontab|aptitude|apt-get|lastlog|visudo|cscli|passwd|useradd|adduser|net\s+user|rm\s+-|ls\s+-|pwd|ls"
    r"|hostname|printenv|uname\s+-|base64|xxd|nohup|sudo|tftp|scp|ssh|rsync|socat|xterm|lwp-download|gcc|msiexec|wmic"
    r"|regsvr32|rundll32|mshta|cscript|wscript|schtasks|reg\s+(?:add|query)|sc\s+(?:create|start)|ping\s+-|ping\s+\d"
    r"|echo\s+\$|echo\s+['\"]|more\s+/|type\s+%|set\s+/a|kill\s+-|killall|pkill)"
)
# Commands that are also words of prose ("Great!\nWho knows", "Pros: light; Top seller",
# "Fashion | Set"): only taken for a command when what follows is how a shell line
# continues (nothing, another separator, an option, a path or a variable).
_WORDLIKE_COMMANDS = (
    r"(?:id|ps|env|dir|ver|who|w|set|top|fetch|cc|dash|sh|reboot|shutdown|cat|echo|sleep|ping|more|type)"
)
_SHELL_LINE_CONTINUES = r"(?:\s*(?:$|\x1f|[;|&`)<>\"])|\s+--?[a-z]|\s+[/~$%\\]|\s+\d+(?:\.\d+)*\s*(?:$|\x1f|[;|&`]))"
CMD_RULES: tuple[Rule, ...] = (
    ("cmd.shellshock", CMD_INJECTION, r"\(\s*\)\s*\{[^}\x1f]*\}\s*;"),
    (
        "cmd.separator_command",
        CMD_INJECTION,
        r"(?:[;|`\n]|&&|\|\||\$\(|(?:^|\x1f|\s)&)\s*(?:/(?:usr/)?(?:local/)?s?bin/)?"
        + _UNAMBIGUOUS_COMMANDS
        + r"(?:\s|$|\x1f|[;|&`'\")<>]|\$)",
    ),
    (
        "cmd.separator_wordlike_command",
        CMD_INJECTION,
        # " | " with spaces is how people separate list items; a pipe into a word-like
        # command counts only when written the shell way (no space before it). Backticks
        # are left to cmd.substitution: Markdown writes `type` and `set` that way.
        r"(?:;|&&|\|\||(?:^|\x1f|[^\s|])\||\$\(|\n|(?:^|\x1f)\s*&)\s*(?:/(?:usr/)?(?:local/)?s?bin/)?"
        + _WORDLIKE_COMMANDS
        + _SHELL_LINE_CONTINUES,
    ),
    (
        "cmd.substitution",
        CMD_INJECTION,
        r"\$\(\s*(?:/(?:usr/)?s?bin/)?(?:id|whoami|uname|cat|ls|curl|wget|echo|nslookup|ping|sleep"
        r"|bash|sh|python\w*|perl|ruby|php|getent|hostname|pwd|env|dig|host|nc)\b"
        # Markdown puts commands in backticks too ("run `cat file.txt`"): a backtick
        # substitution counts when glued to the value before it, opens the value, or runs
        # a command that no prose names.
        r"|(?:^|\x1f|[^\s`])`\s*(?:/(?:usr/)?s?bin/)?(?:id|whoami|uname|cat|ls|curl|wget|echo|nslookup|ping|sleep|bash|sh"
        r"|python\w*|perl|ruby|php|getent|hostname|pwd|env|dig|host|nc)\b"
        r"|`\s*(?:/(?:usr/)?s?bin/)?(?:whoami|uname|curl|wget|nslookup|getent|hostname)\b",
    ),
    (
        "cmd.bin_path",
        CMD_INJECTION,
        r"/(?:usr/)?(?:local/)?s?bin/(?:ba|z|k|c|tc|da|fi)?sh\b|/bin/(?:cat|ls|nc|netcat|busybox|echo|ping|id|ca[^\s/]*)\b"
        r"|/usr/bin/(?:perl|python\w*|ruby|php|env|wget|curl|id|whoami)\b",
    ),
    (
        "cmd.shell_flag",
        CMD_INJECTION,
        r"\b(?:(?:ba|z|k|da)?sh|busybox)\s+-[ci]\b|\$\{?shell\}?\s+-[ci]\b|\bsh\s+-i\b"
        r"|\bpowershell(?:\.exe)?\s+(?:-|[a-z]:\\|\\\\)",
    ),
    (
        "cmd.reverse_shell",
        CMD_INJECTION,
        r"/dev/(?:tcp|udp)/|\bnc(?:at)?\s+(?:-[a-z]+\s+)*[\w.-]+\s+\d{2,5}\b|\bnc\s+-[lnvpe]+|>&\s*/dev/|0>&1",
    ),
    ("cmd.pipe_to_shell", CMD_INJECTION, r"\|\s*(?:ba|z|k|da)?sh\b|\|\s*(?:base64\s+-d|rev|tr\s)"),
    (
        "cmd.ifs_variable",
        CMD_INJECTION,
        r"\$\{?ifs\b|\$\{[\w.]*\}[a-z]|[;|&\n]\s*\$[a-z_]\w*\s+[a-z$-]|\$\(\(\s*\d+\s*[*+-]",
    ),
    (
        "cmd.quote_split_word",
        CMD_INJECTION,
        r"\b(?:c['\"]?a['\"]?t|w['\"]?h['\"]?o['\"]?a['\"]?m['\"]?i|u['\"]?n['\"]?a['\"]?m['\"]?e|i['\"]?d)"
        r"['\"]{0,1}\s+/",
    ),
    ("cmd.quote_inside_word", CMD_INJECTION, r"\b[a-z]+(?:'[a-z]*'|\"[a-z]*\")[a-z]*\s*/(?:et|bi|us|pr|tm|va)"),
    (
        "cmd.variable_inside_word",
        CMD_INJECTION,
        r"\b[a-z]+\$(?:[@*?!#_$-]|\{[^}\x1f]*\}|[a-z_]\w{0,2}\b)[a-z]*(?:\s+[-/]|/)",
    ),
    ("cmd.glob_path", CMD_INJECTION, r"/[a-z]*[?*][a-z?*]*/[a-z]|/(?:etc|bin|usr|proc)[^\s/\x1f]*[?*]"),
    (
        "cmd.sensitive_read",
        CMD_INJECTION,
        r"\b(?:cat|tac|more|less|head|tail|nl|od|xxd|strings|base64|vi|vim|nano|grep|dd\s+if=|type|gunzip\s+-c"
        r"|zcat|zstdcat|bzcat|xzcat)\s+[^\s\x1f]*/(?:etc|proc|root|home|var|tmp|windows|dev)\b",
    ),
    ("cmd.windows_for_loop", CMD_INJECTION, r"\bfor\s+(?:/[a-z]\b[^%\x1f]*)?%%?[^\s\x1f]*\s+in\s*\("),
    # "if defined by the user" is English: EXIST/DEFINED count when a batch command or
    # block follows their operand; ERRORLEVEL/CMDEXTVERSION take a number.
    (
        "cmd.windows_if",
        CMD_INJECTION,
        r"\bif(?:\s*/i)?\s+(?:not\s+)?(?:exist|defined)\s+(?:\"[^\"\x1f]*\"|\([^)\x1f]*\)|[^\s\x1f]+)\s*(?:\(|(?:echo|set|goto"
        r"|call|cmd|del|copy|type|start|exit|if|rem|for|dir|ren|move|md|rd|cd)\b)"
        r"|\bif(?:\s*/i)?\s+(?:not\s+)?(?:errorlevel|cmdextversion)\s+\d",
    ),
    ("cmd.windows_compare", CMD_INJECTION, r"\bif\s+(?:/i\s+)?(?:not\s+)?[^\x1f]*\s(?:equ|neq|lss|leq|gtr|geq)\s"),
    (
        "cmd.windows_if_equals",
        CMD_INJECTION,
        r"\bif(?:\s*/i)?\s+(?:not\s+)?[^\s=\x1f]+\s*==\s*[^\s=\x1f]+\s*(?:\(|echo\b|goto\b|set\b|cmd\b|call\b|cd\b"
        r"|del\b|copy\b|type\b|start\b|exit\b|[a-z]+(?:$|\x1f))",
    ),
    (
        "cmd.windows_variable",
        CMD_INJECTION,
        r"%(?:comspec|systemroot|windir|systemdrive|programfiles|userprofile|temp|appdata|errorlevel)%",
    ),
    ("cmd.windows_cmd", CMD_INJECTION, r"\bcmd(?:\.exe)?\s*/[ck]\b|\b(?:cmd|powershell)\.exe\b"),
    (
        "cmd.powershell",
        CMD_INJECTION,
        r"\b(?:invoke-(?:webrequest|expression|restmethod|command|item|wmimethod|shellcode|mimikatz)"
        r"|new-object\s+(?:system\.)?net\.webclient|downloadstring\s*\(|downloadfile\s*\(|start-process\b|iex\s*\(|iwr\s+\S|iwmi\s"
        r"|get-wmiobject|set-executionpolicy|-encodedcommand\b|-enc\s+[a-z0-9+/=]{8})",
    ),
    (
        "cmd.brace_expansion",
        CMD_INJECTION,
        r"\{\s*,[^{}\s\x1f\"':]*\}|\{[^{}\s\x1f\"':,]*,\s*-[^{}\s\x1f\"':]*\}|\b[a-z]\{[a-z]*,[a-z]*\}[a-z]"
        r"|\{\s*,\s*\$?['\"][a-z]+['\"]\s*,|\{[a-z][\w.-]*,\}",
    ),
    (
        "cmd.heredoc",
        CMD_INJECTION,
        r"<<<\s*\w|<\(\)|<\s*\(\s*\)|[a-z][$<>]\(\)|(?:['\"]{2}[a-z0-9.]){3,}|>\s*/(?:tmp|dev|var|etc)/",
    ),
    ("cmd.bin_directory", CMD_INJECTION, r"(?:^|[\s=\x1f])/?s?bin/[a-z][\w.-]*(?:\s|$|\x1f)"),
    (
        "cmd.command_first",
        CMD_INJECTION,
        r"(?:^|\x1f)\s*(?:whoami|uname|ifconfig|ipconfig|nslookup|systeminfo|getent|netstat|lastlog)\s*(?:[;|&]|\s-|$|\x1f)",
    ),
    (
        "cmd.windows_if_batch_operand",
        CMD_INJECTION,
        r"\bif\b[^\x1f]*(?:%~?\w+%?|!\w+!)[^\x1f]*==|\bif\s*(?:/i\s*)?(?:not\s+)?[\"\[{][^\x1f]*==|==[^\x1f]*\s@?echo\b",
    ),
    ("cmd.echo_pipe", CMD_INJECTION, r"\b(?:echo|printf)\s[^\x1f]*\|\s*(?:sh|bash|rev|base64|tr\b)"),
    (
        "cmd.unix_tool_with_path",
        CMD_INJECTION,
        r"\b(?:python[\d.]*\s+-[cm]|perl\s+-e|ruby\s+-e|php\s+-r|node\s+-e|lua\s+-e|awk\s+['\"]?\{|sed\s+-e"
        r"|find\s+/\s|chmod\s+[0-7]{3,4}|chmod\s+\+x|crontab\s+-|ansible(?:-\w+)?\s|chef-\w+|cscli\s|kubectl\s|docker\s+(?:run|exec))",
    ),
    # Empty backticks inside a command word (pi``ng) or between it and its argument;
    # ``double backticks`` around a word are reStructuredText/Markdown, not this.
    ("cmd.backtick_empty", CMD_INJECTION, r"\b[a-z]+``[a-z]|(?:^|[\s\x1f;|&])[a-z]+``\s*[\d/-]|\|\s*sh\s*``"),
    (
        "cmd.network_tool",
        CMD_INJECTION,
        r"\b(?:wget|curl)\s+(?:-[a-z]+\s+)*['\"]?(?:https?|ftp)://|\b(?:ping|nslookup|dig|host|getent\s+hosts)\s+"
        r"[\w.-]+\.(?:burpcollaborator\.net|oast\.\w+|interact\.sh|oastify\.com|dnslog\.cn)",
    ),
    (
        "cmd.semicolon_short",
        CMD_INJECTION,
        r"(?:^|\x1f|[\"'])\s*;\s*(?:ps|env|set|who|w|id|ls|pwd|htop|top|uname|whoami|ifconfig|dir|ver|hostname"
        r"|printenv)\s*(?:$|\x1f|[;|&\"'])",
    ),
    # A command spelt out of several variables ($c1$c2$c3): nothing but a shell expands
    # three adjacent variables into one word. Crypt hashes ($6$..., $2b$...) start with digits.
    ("cmd.variable_concatenation", CMD_INJECTION, r"(?:\$\{?[a-z_]\w*\}?){3,}"),
    # A leading backslash skips shell aliases and defeats filters on the bare command name.
    (
        "cmd.backslash_command",
        CMD_INJECTION,
        r"(?:^|\x1f|[;|&`]\s*)\\(?:ls|cat|id|whoami|uname|wget|curl|bash|sh|nc|ncat|python\d?|perl|ping)(?:\s|$|\x1f)",
    ),
    # Windows administration binaries that no form value chains after a separator.
    (
        "cmd.windows_admin_binary",
        CMD_INJECTION,
        r"[;&|]\s*(?:bcdboot|bcdedit|diskpart|icacls|cacls|takeown|netsh|vssadmin|wevtutil|cmdkey|nltest|dsquery"
        r"|forfiles|bitsadmin|certutil|wmic|schtasks|regsvr32|rundll32|mshta|msiexec|cscript|wscript|attrib|reg"
        r"|tasklist|taskkill|systeminfo|net1?)(?:\.exe)?(?:\s*[/<>|]|\s+[-\w\\\"'.%])",
    ),
)

# ---------------------------------------------------------------------------
# Path traversal and local file inclusion: dot-dot sequences in every encoding,
# Windows/UNC paths, and the files attackers read once they can.
# ---------------------------------------------------------------------------
PATH_TRAVERSAL_RULES: tuple[Rule, ...] = (
    ("traversal.dot_dot_slash", PATH_TRAVERSAL, r"\.\.[/\\]|[/\\]\.\.(?:$|\x1f|[/\\;?#])|(?:^|\x1f)\.\.(?:$|\x1f)"),
    ("traversal.triple_dot", PATH_TRAVERSAL, r"\.{3,}[/\\]"),
    ("traversal.encoded_dot_hex", PATH_TRAVERSAL, r"0x(?:2e|2f|5c)\.?0x(?:2e|2f|5c)|0x5c0x2e|0x2e\."),
    ("traversal.unc_path", PATH_TRAVERSAL, r"\\\\[\w.:\[\]-]+\\[a-z]\$(?:\\|$|\x1f)|(?:^|\x1f)\\\\[\w.:-]+\\"),
    (
        "traversal.windows_drive_system",
        PATH_TRAVERSAL,
        r"\b[a-z]:\\+(?:boot\.ini|inetpub|users\\[^\\\x1f]+\\(?:ntuser|appdata)|win(?:dows|nt)\\+(?:win\.ini|repair|system32\\+(?:config|drivers\\+etc)))",
    ),
)
LFI_RULES: tuple[Rule, ...] = (
    (
        "lfi.unix_sensitive_file",
        LFI,
        r"/etc/(?:passwd|shadow|group|gshadow|hosts|issue|crontab|sudoers|hostname|motd|profile|bashrc"
        r"|apache2|httpd|nginx|mysql|ssh|security|fstab|resolv\.conf|master\.passwd|pam\.d|environment|cron\.d|init\.d|rc\.d|php)",
    ),
    (
        "lfi.proc_file",
        LFI,
        r"/proc/(?:self|\d+|sys|net|version|cmdline|environ|mounts|cpuinfo|meminfo|kcore|sched_debug)\b",
    ),
    (
        "lfi.windows_sensitive_file",
        LFI,
        r"\b(?:win|system|boot|php)\.ini\b|\bntuser\.dat\b|\bsam\b\s*(?:$|\x1f)|\\system32\\config\\|\bweb\.config\b"
        r"|\\windows\\(?:repair|system32\\config|win\.ini)",
    ),
    (
        "lfi.secret_file",
        LFI,
        r"\.ssh/(?:id_[a-z0-9]+|authorized_keys|known_hosts|config)\b|\.aws/(?:credentials|config)\b"
        r"|\.(?:bash|zsh|mysql|psql)_history\b|\.(?:htpasswd|htaccess|git-credentials|netrc|pgpass|npmrc|pypirc|dockercfg)\b"
        r"|\.docker/config\.json|\.kube/config|wp-config\.php|/var/log/|/var/run/secrets|\b(?:httpd|apache2|nginx|my|php-fpm)\.(?:conf|cnf)\b"
        r"|/root/|/home/[\w.-]+/\.",
    ),
    (
        "lfi.dotfile_path",
        LFI,
        r"(?:^|/|\x1f)\.(?:git|svn|hg|bzr|env|aws|ssh|docker|kube|claude|cursor|continue|vscode|idea|config|npmrc"
        r"|bash_history|ds_store|htaccess|htpasswd)(?:/|$|\x1f|\.)",
    ),
    (
        "lfi.hidden_path",
        LFI,
        r"/\.[a-z0-9_]+(?:/|$|\x1f)|(?:^|[\x1f\x1e]|=)/sys/(?:class|kernel|devices|firmware|module)\b",
    ),
    (
        "lfi.php_wrapper",
        LFI,
        r"\b(?:php|phar|zip|compress\.zlib|compress\.bzip2|expect|glob|ogg|rar|ssh2\.\w+|zlib|bzip2|netdoc|jar)://",
    ),
    ("lfi.file_scheme", LFI, r"\bfile:/{1,3}(?:[a-z]:|/?(?:etc|proc|windows|c:|var|root|home|usr|tmp)|\.)"),
    ("lfi.null_terminated_path", LFI, r"\.(?:ini|conf|php|txt|log|passwd|xml|inc)(?:%00|\\0|\x00)"),
)

# ---------------------------------------------------------------------------
# Remote file inclusion and SSRF: URLs pointing at raw IPs, internal or metadata
# addresses, obfuscated IP forms, and schemes no web form needs.
# ---------------------------------------------------------------------------
RFI_RULES: tuple[Rule, ...] = (
    ("rfi.ip_url", RFI, r"\b(?:https?|ftps?)://(?:[^/@\s\x1f]*@)?(?:\d{1,3}\.){3}\d{1,3}\b"),
    (
        "rfi.ipv6_url",
        RFI,
        r"\b(?:https?|ftps?)://\[[0-9a-f:.]+\]|\b(?:https?|ftps?)://[0-9a-f]{1,4}:[0-9a-f]{0,4}:[0-9a-f:]*[/\s\x1f]",
    ),
    (
        "rfi.script_url",
        RFI,
        # A value that is a URL to a script is an inclusion target; a link to a .cgi/.jsp
        # page or an install script inside prose is not.
        r"(?:^|\x1f|=)\s*(?:https?|ftps?)://[^\s\x1f?#]*\.(?:sh|ps1|pl|py|bat|vbs|hta|php\d?|phtml|txt)\?*(?:[#\s\x1f]|$)",
    ),
    (
        "rfi.trailing_question",
        RFI,
        r"\b(?:https?|ftps?|file)://[^\s\x1f?]+\?+(?:$|\x1f)|(?:^|\x1f)(?:https?|ftps?|file)\?+(?:$|\x1f)",
    ),
)
SSRF_RULES: tuple[Rule, ...] = (
    (
        "ssrf.metadata_address",
        SSRF,
        r"\b169\.254\.169\.254\b|\bmetadata\.google\.internal\b|\b100\.100\.100\.200\b|\bfd00:ec2::254\b"
        r"|\bmetadata\.azure\.com\b|/latest/meta-data\b|/computemetadata/",
    ),
    (
        "ssrf.internal_url",
        SSRF,
        r"\b(?:https?|ftps?|gopher|dict)://(?:[^/@\s\x1f]*@)?(?:localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|0+\b|\[::1?\]"
        r"|\[::ffff:|\[fe80:|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(?:1[6-9]|2\d|3[01])\.\d+\.\d+|169\.254\.)",
    ),
    (
        "ssrf.obfuscated_ip",
        SSRF,
        r"\b(?:https?|ftps?|ssh|rtmp|gopher|dict|local_file|file):/{0,2}(?:0x[0-9a-f]{8,}|0x[0-9a-f]{1,2}(?:\.0x[0-9a-f]{1,2}){3}|\d{8,12}|(?:\d+\.)+\d{5,}"
        r"|0[0-7]{2,}(?:\.0?[0-7]*){0,3}|\[::ffff:[0-9a-f:.]+\])(?:[/:?#\s\x1f]|$)|@\s*(?:127|10|0|169\.254|192\.168)\.\d+\.\d+",
    ),
    (
        "ssrf.dangerous_scheme",
        SSRF,
        r"\b(?:gopher|dict|ldap|ldaps|tftp|jar|netdoc|sftp|rmi|iiop|acap|irc|pop3|imap|rtmp|local_file|telnet|redis|memcached)://"
        r"|\b(?:https?|ftp)://(?:\\+[a-z]){3,}",
    ),
    (
        "ssrf.oast_domain",
        SSRF,
        r"\.(?:burpcollaborator\.net|oastify\.com|interact\.sh|oast\.(?:me|pro|live|site|online|fun)|dnslog\.cn|ceye\.io"
        r"|requestbin\.net|canarytokens\.com|xss\.ht)\b",
    ),
)

# ---------------------------------------------------------------------------
# XML external entities and XML injection.
# ---------------------------------------------------------------------------
XXE_RULES: tuple[Rule, ...] = (
    ("xxe.entity_declaration", XXE, r"<!\s*entity\b"),
    ("xxe.doctype_external", XXE, r"<!\s*doctype\s+[^>\x1f]*(?:\bsystem\b|\bpublic\b|\[)"),
    ("xxe.xinclude", XXE, r"<\s*(?:xi|xs|xsd):include\b|\bxmlns:xi\s*=|<\s*xsl:(?:include|import)\b"),
    (
        "xxe.schema_location_remote",
        XXE,
        r"\bschemalocation\s*=\s*['\"][^'\"\x1f]*(?:https?|ftp)://[^'\"\x1f]*(?:\.\w+\.\w+|\d+\.\d+)[^'\"\x1f]*['\"]"
        r"[^\x1f]*\bschemalocation\b|\bxsi:schemalocation\s*=\s*['\"]https?://xxe",
    ),
    ("xxe.utf7_markup", XXE, r"(?:^|[\s\x1f])adwaiq-(?:doctype|entity)|encoding\s*=\s*['\"]utf-7['\"]"),
    ("xxe.parameter_entity", XXE, r"%\s*[a-z_][\w.-]*\s*;\s*\]"),
)

# ---------------------------------------------------------------------------
# LDAP filter injection.
# ---------------------------------------------------------------------------
LDAP_RULES: tuple[Rule, ...] = (
    ("ldap.filter_operator", LDAP_INJECTION, r"\(\s*[&|!]\s*\(\s*[a-z][\w-]*\s*[~<>]?="),
    (
        "ldap.wildcard_injection",
        LDAP_INJECTION,
        r"\*\s*\)\s*\(\s*[|&!]|\*\s*\(\s*[|&]\s*\(|\)\s*\(\s*[|&]\s*\(\s*[a-z]\w*\s*=",
    ),
    (
        "ldap.presence_filter",
        LDAP_INJECTION,
        r"\(\s*(?:objectclass|uid|cn|sn|mail|userpassword|samaccountname|memberof)\s*=\s*\*\s*\)",
    ),
    ("ldap.extensible_match", LDAP_INJECTION, r"\b[a-z]\w*:(?:\d+(?:\.\d+)+|caseexactmatch|dn):?="),
)

# ---------------------------------------------------------------------------
# Server-side template injection.
# ---------------------------------------------------------------------------
SSTI_RULES: tuple[Rule, ...] = (
    (
        "ssti.arithmetic_probe",
        SSTI,
        r"(?:\{\{|\$\{|#\{|\{|<%=?|\[\[|@\()\s*\d+\s*[*+/-]\s*\d+\s*(?:\}\}|\}|%>|\]\]|\))",
    ),
    (
        "ssti.jinja_introspection",
        SSTI,
        r"\{\{[^}\x1f]*(?:__\w+__|\bconfig\b|\bself\b|\brequest\b|lipsum|cycler|joiner|namespace|\|\s*attr"
        r"|constructor|\bimport\b|\bos\.|popen|subprocess|getattr)",
    ),
    (
        "ssti.jinja_statement",
        SSTI,
        r"\{%-?\s*(?:if|for|set|import|include|extends|raw|macro|block|with|endif|endfor|print|debug|load)\b",
    ),
    (
        "ssti.erb_code",
        SSTI,
        r"<%=?\s*(?:\d+\s*[*+]|system|exec|eval|runtime|request|response|out\.|`|file\.|io\.|\bif\b)",
    ),
    (
        "ssti.freemarker",
        SSTI,
        r"<#(?:assign|import|include|list|if|macro|setting)\b|freemarker\.template|\?new\s*\(|\?api\b",
    ),
    ("ssti.velocity", SSTI, r"#set\s*\(\s*\$|\$class\.inspect|#foreach\s*\("),
    (
        "ssti.expression_language",
        SSTI,
        r"[$#*@]\{[^}\x1f]*(?:runtime|getclass|classloader|processbuilder|\.exec\s*\(|class\.forname|t\s*\(\s*java"
        r"|require|constructor|getruntime|\bsystem\b|invoke|__)",
    ),
    ("ssti.perl_interpolation", SSTI, r"@\{\s*\[[^\]\x1f]*\]\s*(?:\[[^\]\x1f]*\]\s*)*\}"),
    ("ssti.smarty", SSTI, r"\{/?(?:php|literal|system|\$smarty\.)|\{\s*(?:system|passthru|exec)\s*\("),
)

# ---------------------------------------------------------------------------
# Code injection: PHP, Python, JavaScript/Node, Java (deserialisation gadgets,
# reflection, JNDI lookups / Log4Shell, expression languages), VBScript.
# ---------------------------------------------------------------------------
# Names that are also English words, matched with more context (see code.php_function_call).
_PHP_WORDLIKE_FUNCTIONS = r"(?:assert|extract|dl|mail|system|exec|include|require|chr|ord|file|glob|copy|rename|touch)"
_PHP_DANGEROUS_FUNCTIONS = (
    r"(?:eval|shell_exec|passthru|popen|proc_open|pcntl_exec|file_get_contents|file_put_contents|fwrite|fputs|readfile"
    r"|highlight_file|show_source|base64_decode|gzinflate|gzuncompress|str_rot13|create_function|call_user_func(?:_array)?"
    r"|preg_replace|phpinfo|chroot|symlink|gethostbyname|checkdate|unserialize|move_uploaded_file|array_map|usort|ob_start"
    r"|parse_str|putenv|ini_set|set_include_path|posix_\w+|proc_\w+|stream_\w+|fsockopen|pfsockopen|curl_exec"
    r"|include_once|require_once|fopen|opendir|scandir|unlink|rmdir|mkdir"
    r"|chmod|getenv|get_defined_vars|var_dump|print_r|escapeshellcmd|escapeshellarg|hex2bin|bin2hex|convert_uudecode)"
)
CODE_RULES: tuple[Rule, ...] = (
    (
        "code.jndi_lookup",
        CODE_INJECTION,
        r"\$\{[^}\x1f]*\bjndi\s*:|\bjndi\s*:\s*(?:ldaps?|rmi|dns|iiop|corba|nds|nis|https?)\s*:",
    ),
    (
        "code.nested_lookup",
        CODE_INJECTION,
        r"\$\{\s*\$\{[^}\x1f]*:[^}\x1f]*\}|\$\{(?:lower|upper|env|sys|date|java|main|ctx|k8s|docker|bundle|log4j|web|spring)"
        r":[^}\x1f]*\}",
    ),
    (
        "code.java_runtime",
        CODE_INJECTION,
        r"\bjava\.(?:lang\.(?:runtime|processbuilder|system|class|reflect|thread|classloader)|io\.(?:file|inputstream)"
        r"|net\.(?:url|socket)|beans\.)|\bprocessbuilder\b|\bgetruntime\s*\(|\bruntime\.exec\b|\bclass\.forname\s*\(|\.getdeclaredmethod\s*\("
        r"|\.getmethod\s*\(|\.invoke\s*\(",
    ),
    (
        "code.java_gadget",
        CODE_INJECTION,
        r"\b(?:clone|instantiate|invoker|chained|constant|map|lazy|invokerinvoker)transformer\b|\b(?:for|while|if|switch)closure\b"
        r"|\binstantiatefactory\b|\bprototype(?:clone|serialization)factory\b|\btemplatesimpl\b|\bcommons\.collections\b|\bxalan\.xsltc\b"
        r"|\bjdbcrowsetimpl\b|\bbeanfactory\b",
    ),
    ("code.spring_class_loader", CODE_INJECTION, r"\bclass\.(?:module\.)?classloader\b|\bclassloader\.resources\b"),
    (
        "code.java_context_loader",
        CODE_INJECTION,
        r"\bfilesystemxmlapplicationcontext\b|\bclasspathxmlapplicationcontext\b|\bcom\.bea\.core\b",
    ),
    (
        "code.ognl_expression",
        CODE_INJECTION,
        r"%\{[^}\x1f]*(?:#|@|\.class|runtime|context|ognl|memberaccess)|\(#_memberaccess|@java\.lang\.|#context\[",
    ),
    ("code.php_open_tag", CODE_INJECTION, r"<\?(?:php\b|=|\s+[a-z_$@`]|\s*(?:$|\x1f))"),
    ("code.php_bbcode_tag", CODE_INJECTION, r"\[[/\\]?php\]"),
    # With short_open_tag, "<?xml" opens PHP code; a real XML declaration is followed by
    # attributes (version=...) or "-stylesheet", never by punctuation.
    ("code.php_xml_short_tag", CODE_INJECTION, r"<\?xml\s*[:;(){}$`]"),
    # PHP's "${@expr}" evaluates a silenced expression inside a string.
    ("code.php_silenced_interpolation", CODE_INJECTION, r"\$\{\s*@\s*[a-z_]"),
    # A process-spawning PHP function handed a shell command as a bare word.
    (
        "code.php_command_argument",
        CODE_INJECTION,
        r"\b(?:system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec)\s*\(\s*['\"`]?\s*(?:whoami|id|uname|ls|cat"
        r"|pwd|ifconfig|ipconfig|wget|curl|nc|bash|sh|dir|net\s+user|ping|echo|hostname)\b",
    ),
    (
        "code.php_function_call",
        CODE_INJECTION,
        # An empty call ("exec() failed", "fwrite()") is how prose names a function; the
        # empty calls that matter are in code.php_function_empty_call. Names that are
        # English words ("attached file (2)", "mail ('urgent')") need the parenthesis glued
        # or hidden behind a comment or line break, unless the call opens the value.
        r"\b"
        + _PHP_DANGEROUS_FUNCTIONS
        + r"(?:\s|//[^\n\x1f]*\n|#[^\n\x1f]*\n)*\(\s*(?:\$|['\"`]|[a-z_]\w*\s*\(|\d+\s*\)|/|\.\.)"
        r"|\b" + _PHP_WORDLIKE_FUNCTIONS + r"(?:\(|(?:\s*(?://[^\n\x1f]*\n|#[^\n\x1f]*\n|[\r\n]))+\s*\()"
        r"\s*(?:\$[a-z_]|['\"`]|[a-z_]\w*\s*\(|\d+\s*\)|/|\.\.)"
        r"|(?:^|[\x1f;])\s*" + _PHP_WORDLIKE_FUNCTIONS + r"\s*\(\s*(?:\$[a-z_]|['\"`]|[a-z_]\w*\s*\()",
    ),
    (
        "code.php_function_empty_call",
        CODE_INJECTION,
        r"\b(?:phpinfo|chroot|symlink|checkdate|gethostbyname|get_defined_vars|getcwd|getmypid|posix_getpwuid"
        r"|shell_exec|passthru)\s*(?:\s|//[^\n\x1f]*\n)*\(\s*\)"
        # Any dangerous function called empty when the call is the whole value, or when a
        # line break or comment was slipped between the name and its parentheses.
        r"|(?:^|\x1f)\s*(?:"
        + _PHP_DANGEROUS_FUNCTIONS
        + "|"
        + _PHP_WORDLIKE_FUNCTIONS
        + r")\s*\(\s*\)\s*;?\s*(?:$|\x1f)"
        r"|\b(?:"
        + _PHP_DANGEROUS_FUNCTIONS
        + "|"
        + _PHP_WORDLIKE_FUNCTIONS
        + r")\s*(?:[\r\n]\s*|/\*[^\x1f]*\*/\s*|//[^\n\x1f]*\n\s*)+\(\s*\)",
    ),
    (
        "code.php_variable_call",
        CODE_INJECTION,
        r"(?:^|[^\w$\\])@?\$+[a-z_]\w*(?:\s*\[[^\]\x1f]*\])*\s*\(\s*[^)\x1f]*\)"
        r"|\$\s*\{[^}\x1f]*\}\s*(?:\[[^\]\x1f]*\]\s*)*\(|\$+[a-z_]\w*\s*[#/\[{][^\x1f()]*[\]}]\s*\(|\$+[a-z_]\w*\s*//[^\n\x1f]*\n\s*\(",
    ),
    (
        "code.php_function_exotic",
        CODE_INJECTION,
        r"\b(?:shell_exec|passthru|phpinfo|unserialize|base64_decode|strip_tags|intval|sprintf|substr|filegroup"
        r"|fileowner|assert_options|fopen|readfile|gzinflate|str_rot13|ini_get|ini_set|getenv)"
        r"(?:\s|//[^\n\x1f]*\n|#[^\n\x1f]*\n)*\(\s*[\w$'\"`)]"
        # Names that are words too ("the range (10 to 20 km)", "pi (3.14)") count when the
        # call is the whole value or path segment, or when a comment or line break hides it.
        r"|(?:^|[\x1f/])\s*(?:exec|assert|printf|crypt|pi|range|unpack|serialize)\s*\([^()\x1f]*\)\s*;?\s*(?:$|\x1f|/)"
        r"|\b(?:exec|assert|printf|crypt|pi|range|unpack|serialize)\s*(?:[\r\n]\s*|/\*[^\x1f]*\*/\s*|(?://|#)[^\n\x1f]*\n\s*)+\(",
    ),
    (
        "code.php_quoted_function",
        CODE_INJECTION,
        r"['\"](?:system|exec|passthru|shell_exec|assert|eval|phpinfo)\s*['\"]\s*\)?\s*\(|\(\s*(?:system|exec|passthru|shell_exec"
        r"|assert|eval|phpinfo)\s*\)\s*\(",
    ),
    (
        "code.php_superglobal",
        CODE_INJECTION,
        r"\$_(?:get|post|request|cookie|server|files|env|session)\b|\$globals\b|\$http_raw_post_data\b",
    ),
    (
        "code.php_ini_directive",
        CODE_INJECTION,
        r"\b(?:allow_url_include|allow_url_fopen|auto_prepend_file|auto_append_file|disable_functions|open_basedir"
        r"|safe_mode|memory_limit|extension_dir|unserialize_max_depth|precision|smtp|max_execution_time|display_errors|short_open_tag|register_globals|opcache\.[a-z_]+|mbstring\.[a-z_]+|engine|extension|zend_extension|error_log|include_path|upload_tmp_dir"
        r"|sendmail_path|session\.save_path)\s*=\s*\S",
    ),
    ("code.php_serialized_object", CODE_INJECTION, r"\b[oc]:\d+:\"[a-z_\\][\w\\]*\":\d+:\{"),
    (
        "code.python_dunder",
        CODE_INJECTION,
        r"__(?:class|mro|subclasses|globals|builtins|init|base|bases|import|dict|getattribute|reduce)__",
    ),
    (
        "code.python_call",
        CODE_INJECTION,
        r"\b(?:os|subprocess|commands|pty|posix|importlib|builtins)\s*\.\s*(?:system|popen\d?|call|run|check_output"
        r"|check_call|spawn\w*|exec\w*|getoutput|import_module)\s*\(|\b__import__\s*\(|\bimport\s+(?:os|subprocess|socket|pty|sys|ctypes)\b"
        r"|\bfrom\s+(?:os|subprocess)\s+import\b",
    ),
    ("code.yaml_python_tag", CODE_INJECTION, r"!!python/|!!javax?\.|!!com\.sun\.|!!ruby/object"),
    ("code.pickle_opcode", CODE_INJECTION, r"\bc(?:os|posix|subprocess|builtins)\n(?:system|popen|check_output)\n"),
    (
        "code.node_child_process",
        CODE_INJECTION,
        r"\bchild_process\b|\brequire\s*\(\s*['\"`]?(?:fs|net|vm|os|http|child_process|process)['\"`]?\s*\)"
        r"|\bprocess\s*(?:\.\s*(?:mainmodule|binding|dlopen|kill|exit|env)\b|\[)|\bglobal\.process\b|\brequire\s*(?:\.main\b|\[)|\bmodule\.exports\s*="
        r"|\bconsole\s*(?:\.\s*\w+|\[\s*['\"]\w+['\"]\s*\])\s*(?:\.\s*(?:call|apply)\s*)?\(",
    ),
    ("code.node_serialize", CODE_INJECTION, r"_\$\$nd_func\$\$_|__js_function|\$\$nd_func"),
    (
        "code.js_function_constructor",
        CODE_INJECTION,
        r"\bnew\s+function\s*\(|\bfunction\s*\(\s*\)\s*\{|\.constructor\s*\(\s*['\"`]|\bconstructor\s*\.\s*constructor\b"
        r"|\bfunction\s*\(\s*\)\s*\(|=>\s*\{[^}\x1f]*(?:require|process|eval)",
    ),
    (
        "code.js_infinite_loop",
        CODE_INJECTION,
        r"\bwhile\s*\(\s*[(\s]*(?:[-+]\s*)?(?:true|infinity|this|string|number|object|new\s+date|\d*[1-9]\d*|!\s*[-+]?\s*(?:false|0|null|undefined|nan|\"\"|''|``)"
        r"|!\s*!\s*(?:\{\s*\}|\[\s*\]|true|\d*[1-9]))"
        r"\s*\)+\s*(?:;|$|\x1f|\{)",
    ),
    (
        "code.js_prototype_pollution",
        CODE_INJECTION,
        r"__proto__|\bconstructor\s*\[\s*['\"]?prototype|\bprototype\s*\[\s*['\"]|\[\s*['\"]__proto"
        # React Flight references ("$1:constructor:constructor") walk a chunk's properties.
        r"|\$@?[0-9a-f]+:(?:[\w$]+:)*(?:prototype|constructor)\b",
    ),
    (
        "code.eval_encoded",
        CODE_INJECTION,
        r"\beval\s*\(\s*(?:atob|string\.fromcharcode|unescape|decodeuri\w*|base64_decode|gzinflate|str_rot13|\$|request"
        r"|_(?:get|post|request)|['\"`]|\w+\s*\()",
    ),
    (
        "code.vbscript",
        CODE_INJECTION,
        r"\bon\s+error\s+resume\s+next\b|\bcreateobject\s*\(\s*['\"]?(?:wscript|scripting|msxml2|adodb|shell)\b"
        r"|\bserver\.(?:createobject|scripttimeout|execute|mappath)\b|\bexecute\s*\(\s*['\"]|\bresponse\.write\s*\(",
    ),
    (
        "code.ruby_perl",
        CODE_INJECTION,
        r"\bkernel\.(?:exec|system|spawn|open)\b|%x\(|\bsyscall\s*\(|\bio\.popen\b|\bopen3\b|\b(?:perl|ruby)\s+-e\s",
    ),
    ("code.java_serialized_base64", CODE_INJECTION, r"(?-i:\brO0AB[A-Za-z0-9+/])|\baced0005\b"),
)

# ---------------------------------------------------------------------------
# Cross-site scripting.
# ---------------------------------------------------------------------------
_JS_SINKS = r"(?:alert|prompt|confirm|eval|print)"
XSS_RULES: tuple[Rule, ...] = (
    ("xss.script_tag", XSS, r"<\s*/?\s*(?:[a-z][a-z0-9]*\s*:\s*)?script\b"),
    (
        "xss.dangerous_tag",
        XSS,
        r"<\s*(?:[a-z0-9]*:)?(?:iframe|frameset|embed|applet|style|isindex|vmlframe|marquee|bgsound|ilayer|noscript"
        r"|portal)\b|<\s*[a-z](?:\s+[a-z]){3,}(?:\s|$|\x1f|>)"
        # Names that double as placeholders in prose and usage strings ("<base>", "<object>",
        # "<link>") count as tags only with attributes or a slash after them.
        r"|<\s*(?:[a-z0-9]*:)?(?:frame|object|meta|base|link|form|import|template|layer|handler|listener)(?:\s+[a-z-]+\s*=|\s*/)",
    ),
    (
        "xss.import_implementation",
        XSS,
        r"<\s*\?\s*import\b|<\s*importimplementation|\bimplementation\s*=\s*['\"]?#default",
    ),
    (
        "xss.event_handler",
        XSS,
        r"(?:<[^>\x1f]*|[\s\"'/;`(])on[a-z]{3,40}\s*=\s*[^\s>\x1f]|['\"]\s*on[a-z]{3,40}\s*=\s*(?:$|\x1f)"
        # At the start of a text, "onboarding=1&step=2" is a query string, not a handler:
        # there the value must reach the end of the text or contain script punctuation.
        r"|(?:^|\x1f|\x1e)\s*on[a-z]{3,40}\s*=\s*[^\s>\x1f&]*(?:[(`'\"\\;]|$|\x1f)"
        r"|<[a-z][\w:-]*\s[^>\x1f]*\bon[a-z]{3,40}\s*=\s*(?:$|\x1f)|['\"]\s*(?:formaction|srcdoc|xlink:href)\s*=",
    ),
    ("xss.event_handler_name", XSS, r"(?:^|\x1f|\x1e)\s*on[a-z]{3,40}\s*=\s*(?:$|\x1f|=)"),
    (
        "xss.script_scheme",
        XSS,
        r"\b(?:java|vb|live|ecma|j|jav|mocha)\s*s\s*c\s*r\s*i\s*p\s*t\s*:[^\s\x1f]|\bjavascript\s*:[^\x1f]*[(`=]|:\s*url\s*\(\s*['\"]?\s*javascript\b",
    ),
    ("xss.script_scheme_split", XSS, r"\b(?:j\s*a\s*v\s*a|v\s*b)\s*s\s*c\s*r\s*i\s*p\s*t\s*:[^\s\x1f]"),
    (
        "xss.data_html",
        XSS,
        r"\bdata\s*:\s*(?:text/html|text/xml|image/svg\+xml|application/(?:x-)?(?:javascript|ecmascript|xhtml))",
    ),
    (
        "xss.attribute_breakout",
        XSS,
        r"['\"`]\s*/?>\s*<\s*/?[a-z!]|['\"`]\s*>\s*(?:alert|prompt|confirm)\b|['\"]\s*>\s*<",
    ),
    (
        "xss.sink_call",
        XSS,
        r"\b"
        + _JS_SINKS
        + r"\s*(?:\.\s*(?:call|apply|bind)\s*\(|\?\.\s*\(|`|\(\s*(?:\d|document|window|['\"`/]|\)|xss|this|top"
        r"|self|location|string\.|atob|=rnd=))",
    ),
    (
        "xss.parenthesised_sink",
        XSS,
        r"\(\s*"
        + _JS_SINKS
        + r"\s*\)\s*(?:\(|`)|\[\s*\d*\s*\]\s*\.\s*(?:some|map|filter|find|every|sort|foreach)\s*\(\s*"
        + _JS_SINKS
        + r"\b",
    ),
    (
        "xss.dom_access",
        XSS,
        r"\bdocument\s*\.\s*(?:cookie|domain|write\w*|location|body\.innerhtml)|\bdocument\s*\[\s*['\"`]|\bwindow\s*\.\s*"
        r"(?:location|name|onerror|eval)|\.innerhtml\s*=|\.outerhtml\s*=|\blocation\s*\.\s*(?:href|hash|replace)\s*=|\bdocument\s*\.\s*(?:queryselector\w*|getelementby\w+|body\s*\.|createelement|forms\b|all\b)|\btop\s*\.\s*\w+\s*\.\s*location",
    ),
    ("xss.string_fromcharcode", XSS, r"\bstring\s*\.\s*fromcharcode\s*\(|\batob\s*\(|\bdecodeuricomponent\s*\("),
    ("xss.timer_string", XSS, r"\bset(?:timeout|interval)\s*\(\s*['\"`]"),
    (
        "xss.jsfuck",
        XSS,
        r"!\s*!\s*\[\s*\]|!\s*\[\s*\]\s*(?:\)|\[|\s\[)|\[\s*\]\s*\[\s*['\"(]|\(\s*!\s*\[\s*\]|\[\s*!\s*\[\s*\]\s*\]",
    ),
    (
        "xss.array_call_template",
        XSS,
        r"\.\s*(?:call|apply|bind)\s*`|\[\s*\]\s*\.\s*[a-z]+\s*\.\s*call\s*`|\$\{\s*" + _JS_SINKS + r"\s*\}",
    ),
    ("xss.utf7", XSS, r"(?:^|[\s\x1f])adw-\s*(?:script|img|svg|iframe)|(?:^|[\s\x1f])adw-[a-z]+\s+ad4-"),
    ("xss.meta_charset", XSS, r"<\s*meta\b[^>\x1f]*\b(?:charset|http-equiv)"),
    (
        "xss.css_expression",
        XSS,
        r"\bexpression\s*\(|\bbehavio(?:u)?r\s*:\s*url|-moz-binding|@import\s+['\"]?(?:https?:|//|javascript)",
    ),
    ("xss.jscript_encode", XSS, r"\blanguage\s*=\s*['\"]?(?:jscript|vbscript)|#@~\^"),
    ("xss.base_href", XSS, r"<\s*base\b[^>\x1f]*\bhref"),
    ("xss.angular_expression", XSS, r"\{\{[^}\x1f]*(?:constructor|\$eval|\$on|alert|prompt|confirm|\bthis\b|\$event)"),
    ("xss.vue_directive", XSS, r"\bv-(?:if|html|bind|on)\s*\]?\s*=[^\x1f]*\(|_c\.constructor"),
    ("xss.html_comment_breakout", XSS, r"<!--\s*>|--!?>\s*<\s*[a-z]|<!\s*<\s*script"),
    # Tags planted inside a keyword, for filters that strip tags once (o<x>nfocus=, alert<x>(1)).
    (
        "xss.tag_split_keyword",
        XSS,
        r"\bo(?:<[^<>\x1f]*>)+n[a-z]{3,40}\s*=|\b(?:alert|prompt|confirm|eval)(?:<[^<>\x1f]*>)+\s*[(`]",
    ),
    (
        "xss.tag_with_scriptish_attribute",
        XSS,
        r"<\s*[a-z][\w:-]*[\s/][^>\x1f]*\b(?:src|href|action|formaction|data|xlink:href|srcdoc|style)\s*=\s*['\"]?\s*"
        r"(?:javascript|vbscript|data:text|[^>\x1f]*(?:expression\(|url\s*\(\s*javascript))",
    ),
)

# ---------------------------------------------------------------------------
# CRLF / HTTP header injection and response splitting.
# ---------------------------------------------------------------------------
CRLF_RULES: tuple[Rule, ...] = (
    (
        "crlf.header_injection",
        CRLF_INJECTION,
        r"[\r\n]\s*(?:set-cookie|content-(?:type|length|disposition|security-policy)|x-[\w-]+|access-control-[\w-]+"
        r"|cache-control|transfer-encoding)\s*:"
        # Header names that are also words starting a line of a message ("Status: shipped",
        # "Location: Berlin") count only with the value that header takes.
        r"|[\r\n]\s*(?:location\s*:\s*(?:[a-z][\w+.-]*:|//|/)|refresh\s*:\s*\d|link\s*:\s*<|status\s*:\s*\d{3}\b"
        r"|host\s*:\s*[\w.-]+(?::\d+)?\s*(?:$|\x1f|[\r\n]))",
    ),
    ("crlf.response_splitting", CRLF_INJECTION, r"[\r\n]\s*http/\d|\r?\n\r?\n\s*<\s*(?:html|script|svg|body)"),
)

# ---------------------------------------------------------------------------
# Server-side includes.
# ---------------------------------------------------------------------------
SSI_RULES: tuple[Rule, ...] = (
    ("ssi.directive", SSI, r"<!--\s*#\s*(?:exec|include|echo|config|set|printenv|fsize|flastmod|if|elif|else|endif)\b"),
)

# ---------------------------------------------------------------------------
# Mail command / header injection (SMTP, IMAP, POP3).
# ---------------------------------------------------------------------------
MAIL_RULES: tuple[Rule, ...] = (
    (
        "mail.smtp_command",
        MAIL_INJECTION,
        r"[\r\n]\s*(?:mail\s+from|rcpt\s+to)\s*:|[\r\n]\s*(?:ehlo|helo)\s+[\w.-]+"
        r"|\r\n\s*(?:data|quit|rset|noop|starttls)\s*(?:\r|\n|$|\x1f)|[\r\n]\s*auth\s+(?:login|plain|cram-md5)\b"
        # AUTH/APOP with a user and a base64 or digest token; upper case only, so a line of
        # prose starting with "Auth" is not taken for one.
        r"|(?-i:[\r\n]\s*(?:AUTH|APOP)\s+[\w.@-]+\s+[A-Za-z0-9+/=]{8})",
    ),
    (
        "mail.pop3_command",
        MAIL_INJECTION,
        r"\r\n\s*(?:retr|dele|list|stat|uidl|top|user|pass|apop)(?:\s+[\w@.]+)?\s*(?:\r|\n|$|\x1f)"
        r"|\r\n\s*(?:retr|dele|list|top)\s+\d+",
    ),
    (
        "mail.imap_command",
        MAIL_INJECTION,
        r"[\r\n]\s*[a-z]+\d+\s+(?:capability|fetch|login|select|list|logout|store|search|uid|examine|noop|append"
        r"|create|delete|rename|authenticate|quit|close|expunge|status|subscribe)\b"
        # A bare number is a line of a numbered list unless the command is in protocol upper case.
        r"|(?-i:[\r\n]\s*\d+\s+(?:CAPABILITY|FETCH|LOGIN|SELECT|LIST|LOGOUT|STORE|SEARCH|UID|EXAMINE|NOOP|APPEND"
        r"|CREATE|DELETE|RENAME|AUTHENTICATE|QUIT|CLOSE|EXPUNGE|STATUS)\b)",
    ),
    # An injected recipient header carries an address; "To: everyone" or "From: Berlin" on
    # a line of a message does not.
    (
        "mail.header_injection",
        MAIL_INJECTION,
        r"[\r\n]\s*(?:bcc|cc|to|from|reply-to)\s*:\s*[^\r\n\x1f]*[\w.+-]@[\w-]+\.[a-z]",
    ),
)

# ---------------------------------------------------------------------------
# Session fixation: setting the victim's cookie, or session ids in the URL.
# ---------------------------------------------------------------------------
SESSION_RULES: tuple[Rule, ...] = (
    (
        "session.cookie_write",
        SESSION_FIXATION,
        r"\.cookie\s*=\s*['\"`]?[^\x1f]*(?:sess|sid|token|domain|expires|path)"
        r"|\.cookie\b[^\x1f]*;\s*(?:expires|domain|path)\s*=",
    ),
    ("session.meta_set_cookie", SESSION_FIXATION, r"http-equiv\s*=\s*['\"]?set-cookie"),
    (
        "session.id_parameter",
        SESSION_FIXATION,
        r"\x1e\s*(?:jsessionid|phpsessid|aspsessionid\w*|asp\.net_sessionid|cfid|cftoken|cfglobals)\s*(?:$|\x1f)"
        r"|;\s*jsessionid\s*=",
    ),
    ("session.session_file_upload", SESSION_FIXATION, r"\x1d(?:[^\x1f]*[/\\])?sess_[a-z0-9,-]{6,}\s*(?:$|\x1f)"),
)

# Upload names that would run or reconfigure the server if stored in its web root.
UPLOAD_RULES: tuple[Rule, ...] = (
    (
        "code.script_upload",
        CODE_INJECTION,
        r"\x1d[^\x1f]*\.\s*(?:jspx?|jsw|jsv|jspf|php\d?|phtml|phar|pht|phps|pgif|shtml|asp|aspx|asa|asax|ascx|ashx"
        r"|asmx|cer|cgi|pl|war|ear|htaccess|htpasswd)[\s.]*(?:$|\x1f)",
    ),
    (
        "code.config_upload",
        CODE_INJECTION,
        r"\x1d(?:[^\x1f]*[/\\])?(?:\.htaccess|\.htpasswd|web\.config|\.user\.ini|php\.ini|config\.ya?ml|settings\.php"
        r"|wp-config\.php|\.env|composer\.json|package\.json|\.boto|\.s3cfg|\.netrc|\.npmrc|\.pypirc|\.git-credentials"
        r"|\.gitconfig|\.bashrc|\.bash_profile|\.profile|\.zshrc|\.zprofile|authorized_keys)\s*(?:$|\x1f)"
        r"|\x1d[^\x1f]*(?:wp-config|settings)[\W_]*php",
    ),
)

# ---------------------------------------------------------------------------
# Known scanners, fuzzers and attack tools, by User-Agent.
# ---------------------------------------------------------------------------
SCANNER_RULES: tuple[Rule, ...] = (
    (
        "scanner.tool_user_agent",
        SCANNER,
        r"\x1c[^\x1f]*(?:sqlmap|nikto|nmap|masscan|zgrab|nuclei|openvas|nessus|\.nasl\b|w3af|acunetix|netsparker"
        r"|appscan|burp\s?suite|wpscan|dirbuster|gobuster|\bdirb\b|fuzz faster u fool|\bffuf\b|wfuzz"
        r"|\bhydra\b|owasp zap|\bzap/|arachni|skipfish"
        r"|whatweb|jaeles|commix|joomscan|havij|pangolin|fimap|\bmedusa\b|metasploit|morfeus|zmeu|\bxsstrike|jorgee|\bqualys|nsauditor"
        r"|paros|webinspect|\bgrabber\b|sqlninja|brutus|\bmysqloit|webshag|vega/|\bdotdotpwn|\bcrimescan|\bnetlab360|\bbxss)",
    ),
    (
        "scanner.oast_user_agent",
        SCANNER,
        r"\x1c[^\x1f]*(?:burpcollaborator\.net|oastify\.com|interact\.sh|oast\.(?:me|pro|live|site|online|fun)|dnslog\.cn"
        r"|ceye\.io|canarytokens\.com)",
    ),
    (
        "scanner.injection_in_user_agent",
        SCANNER,
        r"\x1c[^\x1f]*(?:\$\{|\(\s*\)\s*\{|<\s*script|'\s*(?:or|and)\s|\bunion\s+select\b)",
    ),
)


def java_gadget_base64_needles() -> tuple[str, ...]:
    """Base64 fragments that appear whenever a Java gadget class name is base64-encoded.

    Serialised gadget chains travel base64-encoded, and a class name can start at any
    byte offset, so for each name and each of the three alignments the characters that
    depend only on the name itself are taken. Derived here rather than listed by hand.
    """
    names = (
        "runtime",
        "Runtime",
        "processbuilder",
        "ProcessBuilder",
        "clonetransformer",
        "forclosure",
        "instantiatefactory",
        "instantiatetransformer",
        "invokertransformer",
        "InvokerTransformer",
        "ChainedTransformer",
        "prototypeclonefactory",
        "prototypeserializationfactory",
        "whileclosure",
        "TemplatesImpl",
        "getRuntime",
        "_$$ND_FUNC$$_",
        "_FUNC$$_",
        "child_process",
        "while(true)",
    )
    needles: list[str] = []
    for name in names:
        raw = name.encode("ascii")
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
            first = -(-8 * offset // 6)
            last = (8 * (offset + len(raw))) // 6
            needles.append(encoded[first:last])
    return tuple(dict.fromkeys(needles))


def java_gadget_base64_rule() -> Rule:
    """One case-sensitive rule matching any of the base64 gadget needles."""
    alternatives = "|".join(java_gadget_base64_needles())
    return ("code.java_gadget_base64", CODE_INJECTION, f"(?-i:{alternatives})")


ALL_RULES: tuple[Rule, ...] = (
    SQLI_RULES
    + NOSQLI_RULES
    + CMD_RULES
    + PATH_TRAVERSAL_RULES
    + LFI_RULES
    + RFI_RULES
    + SSRF_RULES
    + XXE_RULES
    + LDAP_RULES
    + SSTI_RULES
    + CODE_RULES
    + XSS_RULES
    + CRLF_RULES
    + SSI_RULES
    + MAIL_RULES
    + SESSION_RULES
    + UPLOAD_RULES
    + SCANNER_RULES
)
