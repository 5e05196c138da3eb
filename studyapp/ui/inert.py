"""User text shown in a ``gr.Markdown`` exactly as written, never as markup: no image a browser would fetch, no
link that leads to another site, no HTML (case information, study descriptions, question texts, comparison
contexts come from import files and other users).

Every HTML-special character is written as an entity and every Markdown punctuation character is
backslash-escaped (CommonMark section 2.4), which also breaks the patterns that would autolink a bare URL
(``http\\://``, ``www\\.``). The page's Content-Security-Policy (``studyapp.web.app``) blocks remote loads anyway;
this keeps the text from turning into markup at all.
"""

import html
import re

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:<>=\"'$%@^])")


def inert(text) -> str:
    """``text`` (any value, ``str()`` of it) escaped for a Markdown component; line breaks are kept."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(str(text), quote=False))
