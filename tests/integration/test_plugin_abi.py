"""
test_plugin_abi.py - ABI 5 grew only the attachment hook's reply (the
scanners' mark), which the core allocates and zeroes: a plugin built for
ABI 4, whose postdoc_reply is the text alone, still loads and its DENY
still names the file; one built for ABI 3 is refused at start with the
range this core loads.
"""
import base64
import subprocess

import postdoc_harness as H

# The ABI 4 header's view: abi 4 and a reply that is only its text.  The
# plugin writes the whole of what it believes is the reply.
OLD_C = r"""
#include <string.h>
#include <stdio.h>
#define postdoc_reply postdoc_reply_v5
#include "postdoc/plugin.h"
#undef postdoc_reply
struct postdoc_reply { char text[POSTDOC_PLUGIN_TEXT_MAX]; };

static enum postdoc_verdict
old_attachment(void *state, const struct postdoc_attachment_info *a,
    struct postdoc_reply *r)
{
	(void)state;
	if (strstr(a->filename, "refuse") == NULL)
		return POSTDOC_CONT;
	memset(r, 'x', sizeof(*r));
	snprintf(r->text, sizeof(r->text), "old plugin refuses %s",
	    a->filename);
	return POSTDOC_DENY;
}

const struct postdoc_plugin postdoc_plugin = {
	.abi = ABI,
	.size = sizeof(struct postdoc_plugin),
	.name = "oldabi",
	.version = "1.0",
	.hooks = { .attachment = (void *)old_attachment },
};
"""


def build(tmp_path, abi):
    src = tmp_path / ("old%d.c" % abi)
    src.write_text(OLD_C)
    so = tmp_path / ("old%d.so" % abi)
    cflags = subprocess.run(["pkg-config", "--cflags", "libconfig"],
                            capture_output=True, text=True,
                            check=True).stdout.split()
    subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-DABI=%d" % abi,
                    "-I", str(H.SRCDIR / "gateway" / "include")] + cflags +
                   ["-o", str(so), str(src)], check=True, timeout=H.T(60))
    return so


def mail(name):
    return ("From: <%s>\r\nTo: x\r\nSubject: abi\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            "Content-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
            "Content-Type: application/pdf\r\nContent-Disposition: "
            "attachment; filename=%s\r\nContent-Transfer-Encoding: "
            "base64\r\n\r\n%s\r\n--b--\r\n"
            % (H.CORPUS_CONTACT, name,
               base64.b64encode(H.make_pdf(name)).decode())).encode()


def test_abi4_plugin_still_loads_and_decides(own_servers, tmp_path):
    so = build(tmp_path, 4)
    s = own_servers(start=False)
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "oldabi", "path": str(so)}])
    s.write_config()
    s.start()
    s.add_account("ACME", "contact")
    addr = s.create_dossier("ACME")
    r, c = H.send_raw_message(s.smtp_port, H.CORPUS_CONTACT, [addr],
                              mail("refuse-me.pdf"))
    c.close()
    assert r.code == 554 and "old plugin refuses refuse-me.pdf" in r.text, r
    r, c = H.send_raw_message(s.smtp_port, H.CORPUS_CONTACT, [addr],
                              mail("fine.pdf"))
    c.close()
    assert r.code == 250, r
    # An ABI 4 reply carries no scan mark: none is recorded.
    assert s.query("SELECT filename, scan FROM documents") == \
        [("fine.pdf", "")]


def test_abi3_plugin_is_refused_naming_the_range(own_servers, tmp_path):
    so = build(tmp_path, 3)
    s = own_servers(start=False)
    s.sections["plugins"] = H.LcList(list(s.sections["plugins"]) + [
        {"name": "oldabi", "path": str(so)}])
    s.write_config()
    p = s.cli("check-config", check=False)
    assert p.returncode != 0
    assert "ABI 3" in p.stderr and "needs ABI 4 to 5" in p.stderr, p.stderr
