/*
 * db_pg.c - the store's PostgreSQL driver: libpq behind db.h (issue 18).
 * Owns one PGconn per struct db and each statement's binds and result;
 * maps SQLSTATEs onto db.h's codes.  Never prints (libpq's notices are
 * kept off stderr) and never puts a value into SQL text: every value
 * travels as a parameter of PQexecParams.
 *
 * Statements run unnamed (PQexecParams: parse, bind, execute in one
 * round trip).  Named prepared statements cached per connection
 * (PQprepare + PQexecPrepared) are a later optimisation behind the same
 * calls; results are read whole (no single-row mode) until a statement
 * needs to stream.
 */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "lib/util.h"

/* Type OIDs of the server's catalog (pg_type.dat): libpq-dev does not
 * install catalog/pg_type_d.h, and these have not changed since 7.x. */
#define PG_BOOLOID	16
#define PG_BYTEAOID	17
#define PG_INT8OID	20
#define PG_INT2OID	21
#define PG_INT4OID	23
#define PG_TEXTOID	25
#define PG_OIDOID	26
#define PG_FLOAT4OID	700
#define PG_FLOAT8OID	701
#define PG_NUMERICOID	1700

#define PG_MSGLEN	1024

struct db_pg {
	struct db base;
	PGconn *conn;
	int code;		/* the last call's db code, DB_OK after success */
	int64_t changes;	/* rows of the last INSERT/UPDATE/DELETE/MERGE */
	char msg[PG_MSGLEN];
};

enum pg_kind { PG_NULL = 0, PG_INT, PG_TEXT, PG_BLOB };

struct pg_bind {
	enum pg_kind kind;
	char *val;		/* owned: text, int64 as text, or blob bytes */
	int len;		/* blob only */
};

/* A bytea value of the current row, decoded once when first read. */
struct pg_col {
	unsigned char *buf;	/* NUL-terminated, for col_text */
	size_t len;
	int done;
};

enum pg_state { PS_READY, PS_ROWS, PS_DONE };

struct db_pg_stmt {
	struct db_stmt base;
	struct db_pg *db;
	char *sql;		/* ?N rewritten to $N */
	int nparams;
	struct pg_bind *binds;	/* [nparams] */
	unsigned char *used;	/* [nparams]: 1 if the SQL names $i+1 */
	enum pg_state state;
	PGresult *res;		/* the executed statement's rows */
	PGresult *desc;		/* columns described before the first step */
	int row;		/* the current row of res */
	struct pg_col *cols;	/* [PQnfields(res)] */
};

#define DB(d) ((struct db_pg *)(d))
#define ST(s) ((struct db_pg_stmt *)(s))

static const struct db_ops db_pg_ops;

/* ---- errors ---- */

/* libpq's messages span lines ("ERROR:  ...\nDETAIL:  ..."): one line
 * for the log, each newline and the indent after it one space. */
static void
pg_set_msg(struct db_pg *d, const char *m, const char *sqlstate)
{
	size_t o = 0;
	const char *p;

	for (p = m != NULL ? m : ""; *p != '\0' && o + 1 < sizeof(d->msg);
	    p++) {
		if (*p == '\n' || *p == '\t') {
			while (p[1] == '\n' || p[1] == '\t' || p[1] == ' ')
				p++;
			d->msg[o++] = ' ';
		} else
			d->msg[o++] = *p;
	}
	while (o > 0 && d->msg[o - 1] == ' ')
		o--;
	d->msg[o] = '\0';
	if (sqlstate != NULL && o + 9 < sizeof(d->msg))
		snprintf(d->msg + o, sizeof(d->msg) - o, " [%s]", sqlstate);
}

/*
 * SQLSTATE (PostgreSQL docs, Appendix A "PostgreSQL Error Codes") to
 * db.h's code: class 23 (integrity constraint violation) is a refused
 * row; serialization failure, deadlock, lock_not_available and
 * query_canceled (a lock or statement timeout) are worth a retry, as
 * SQLite's BUSY; disk_full is FULL; class 08 (connection exception) and
 * 57P01-57P03 (the server shutting down, crashed or starting) mean the
 * server is gone for now: IOERR, a 451 for the delivery.  No SQLSTATE
 * at all is libpq's own failure, the server never judged the statement:
 * the socket closed or a write failed (after an immediate shutdown the
 * first failure comes before libpq marks the connection bad), IOERR.
 */
static int
pg_code(const char *st)
{
	if (st == NULL || strlen(st) != 5)
		return DB_IOERR;
	if (strncmp(st, "23", 2) == 0)
		return DB_CONSTRAINT;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 ||
	    strcmp(st, "55P03") == 0 || strcmp(st, "57014") == 0)
		return DB_BUSY;
	if (strcmp(st, "53100") == 0)
		return DB_FULL;
	if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
	    strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0)
		return DB_IOERR;
	return DB_ERROR;
}

static int
pg_fail(struct db_pg *d, int code, const char *msg)
{
	d->code = code;
	pg_set_msg(d, msg, NULL);
	return code;
}

/* A command tag that counts changed rows, as sqlite3_changes does:
 * SELECT's count is not a change. */
static int
pg_counts_changes(const char *tag)
{
	return strncmp(tag, "INSERT ", 7) == 0 ||
	    strncmp(tag, "UPDATE ", 7) == 0 ||
	    strncmp(tag, "DELETE ", 7) == 0 || strncmp(tag, "MERGE ", 6) == 0;
}

/* Take res (NULL: libpq failed before the server answered): DB_OK and
 * *res_r (if res_r, else cleared), or the failure's code and message. */
static int
pg_result(struct db_pg *d, PGresult *res, PGresult **res_r)
{
	const char *m;
	int code;

	if (res_r != NULL)
		*res_r = NULL;
	if (res == NULL)
		return pg_fail(d, pg_code(NULL), PQerrorMessage(d->conn));
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		if (pg_counts_changes(PQcmdStatus(res)))
			d->changes = strtoll(PQcmdTuples(res), NULL, 10);
		d->code = DB_OK;
		d->msg[0] = '\0';
		if (res_r != NULL)
			*res_r = res;
		else
			PQclear(res);
		return DB_OK;
	default:
		code = pg_code(PQresultErrorField(res, PG_DIAG_SQLSTATE));
		m = PQresultErrorMessage(res);
		d->code = code;
		pg_set_msg(d, m != NULL && *m != '\0' ? m :
		    PQerrorMessage(d->conn),
		    PQresultErrorField(res, PG_DIAG_SQLSTATE));
		PQclear(res);
		return code;
	}
}

/* ---- the connection ---- */

static void
db_pg_close(struct db *db)
{
	PQfinish(DB(db)->conn);
	free(db);
}

/*
 * ?N (SQLite's numbered parameter, the store's only spelling) to $N,
 * in place, outside '...' literals, "..." identifiers and comments
 * where a '?' is text.  A bare '?' is refused: PostgreSQL reads it as a
 * jsonb operator, and the store never writes one.  Dollar-quoted bodies
 * are not looked into: the store sends those through exec only.
 * *used_r[i]: 1 if ?i+1 appears (SQLite lets ?1 and ?3 go without ?2).
 */
static int
pg_rewrite(char *sql, int *nparams_r, unsigned char **used_r, char *msg,
    size_t msglen)
{
	unsigned char *used = NULL;
	char *p = sql, q;
	int max = 0, depth;
	long n;

	while (*p != '\0') {
		if (*p == '\'' || *p == '"') {
			for (q = *p++; *p != '\0' && *p != q; p++)
				;
			if (*p != '\0')
				p++;	/* '' and "" close and reopen */
		} else if (p[0] == '-' && p[1] == '-') {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			/* PostgreSQL's block comments nest (docs 4.1.5). */
			for (depth = 1, p += 2; *p != '\0' && depth > 0; p++)
				if (p[0] == '/' && p[1] == '*')
					depth++, p++;
				else if (p[0] == '*' && p[1] == '/')
					depth--, p++;
		} else if (*p == '?') {
			if (!isdigit((unsigned char)p[1])) {
				snprintf(msg, msglen, "bare '?' at offset %td: "
				    "parameters are numbered (?N)", p - sql);
				free(used);
				return DB_ERROR;
			}
			*p++ = '$';
			n = strtol(p, &p, 10);
			/* The protocol's Bind counts parameters in 16 bits. */
			if (n < 1 || n > 65535) {
				snprintf(msg, msglen, "parameter ?%ld out of "
				    "range", n);
				free(used);
				return DB_ERROR;
			}
			if (n > max) {
				used = xrealloc(used, (size_t)n);
				memset(used + max, 0, (size_t)(n - max));
				max = (int)n;
			}
			used[n - 1] = 1;
		} else
			p++;
	}
	*nparams_r = max;
	*used_r = used;
	return DB_OK;
}

static int
db_pg_prepare(struct db *db, const char *sql, struct db_stmt **s_r)
{
	struct db_pg *d = DB(db);
	struct db_pg_stmt *s;
	char *text = xstrdup(sql);
	unsigned char *used = NULL;
	int n, rc;

	*s_r = NULL;
	rc = pg_rewrite(text, &n, &used, d->msg, sizeof(d->msg));
	if (rc != DB_OK) {
		free(text);
		return d->code = rc;
	}
	s = xcalloc(1, sizeof(*s));
	s->base.ops = &db_pg_ops;
	s->db = d;
	s->sql = text;
	s->nparams = n;
	s->used = used;
	s->binds = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*s->binds));
	s->state = PS_READY;
	*s_r = &s->base;
	d->code = DB_OK;
	return DB_OK;
}

/* Several statements in one text (the schema, BEGIN, SAVEPOINT x):
 * PQexec runs them in one implicit transaction unless they open their
 * own, and stops at the first failure (docs 34.3.1, PQexec). */
static int
db_pg_exec(struct db *db, const char *sql)
{
	struct db_pg *d = DB(db);

	return pg_result(d, PQexec(d->conn, sql), NULL);
}

static int64_t
db_pg_changes(struct db *db)
{
	return DB(db)->changes;
}

/* PostgreSQL has no connection-wide last row id: the store's SQL says
 * INSERT ... RETURNING id instead. */
static int64_t
db_pg_last_insert_id(struct db *db)
{
	(void)db;
	return -1;
}

static const char *
db_pg_errmsg(struct db *db)
{
	return DB(db)->msg[0] != '\0' ? DB(db)->msg : "not an error";
}

static int
db_pg_errcode(struct db *db)
{
	return DB(db)->code;
}

/* Idle is outside a transaction; active, in one, or in a failed one
 * (which only ROLLBACK ends) are inside (docs 34.2, PQtransactionStatus).
 * A broken connection (UNKNOWN) counts as inside: its ROLLBACK fails. */
static int
db_pg_in_transaction(struct db *db)
{
	return PQtransactionStatus(DB(db)->conn) != PQTRANS_IDLE;
}

/* ---- statements ---- */

static void
pg_cols_clear(struct db_pg_stmt *s)
{
	int i, n;

	if (s->cols == NULL)
		return;
	n = s->res != NULL ? PQnfields(s->res) : 0;
	for (i = 0; i < n; i++) {
		free(s->cols[i].buf);
		s->cols[i] = (struct pg_col){ 0 };
	}
}

static void
pg_result_clear(struct db_pg_stmt *s)
{
	pg_cols_clear(s);
	free(s->cols);
	s->cols = NULL;
	PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	s->state = PS_READY;
}

/* The binds as PQexecParams takes them.  Every value goes in text
 * format but blobs (bytea in binary: no escaping, and a NUL byte is
 * data); int64 says int8 so a comparison or LIMIT needs no cast; text
 * and NULL leave the type to the server, which infers it from where the
 * parameter stands (docs 34.3.1, paramTypes).  A number the SQL skips
 * has nowhere to infer from: it is sent as text, unused. */
static PGresult *
pg_run(struct db_pg_stmt *s, int describe_only)
{
	int i, n = s->nparams, sz = n > 0 ? n : 1;
	Oid *types = xcalloc((size_t)sz, sizeof(*types));
	const char **vals = xcalloc((size_t)sz, sizeof(*vals));
	int *lens = xcalloc((size_t)sz, sizeof(*lens));
	int *fmts = xcalloc((size_t)sz, sizeof(*fmts));
	PGresult *res = NULL;

	for (i = 0; i < n; i++) {
		const struct pg_bind *b = &s->binds[i];

		vals[i] = b->kind == PG_NULL ? NULL : b->val;
		types[i] = b->kind == PG_INT ? PG_INT8OID :
		    b->kind == PG_BLOB ? PG_BYTEAOID :
		    !s->used[i] ? PG_TEXTOID : 0;
		lens[i] = b->kind == PG_BLOB ? b->len : 0;
		fmts[i] = b->kind == PG_BLOB;
	}
	if (!describe_only)
		res = PQexecParams(s->db->conn, s->sql, n, types, vals, lens,
		    fmts, 0);
	else if (pg_result(s->db, PQprepare(s->db->conn, "", s->sql, n,
	    types), NULL) == DB_OK)
		res = PQdescribePrepared(s->db->conn, "");
	free(types);
	free(vals);
	free(lens);
	free(fmts);
	return res;
}

/* The first step executes; each step then moves to the next row of the
 * result.  A step after DB_DONE runs the statement again, as
 * sqlite3_step does. */
static int
db_pg_step(struct db_stmt *st)
{
	struct db_pg_stmt *s = ST(st);
	int rc;

	if (s->state == PS_DONE)
		pg_result_clear(s);
	if (s->state == PS_READY) {
		rc = pg_result(s->db, pg_run(s, 0), &s->res);
		if (rc != DB_OK)
			return rc;
		s->cols = xcalloc((size_t)PQnfields(s->res) + 1,
		    sizeof(*s->cols));
		s->state = PS_ROWS;
		s->row = -1;
	}
	pg_cols_clear(s);
	if (++s->row < PQntuples(s->res))
		return DB_ROW;
	s->state = PS_DONE;
	return DB_DONE;
}

static int
db_pg_reset(struct db_stmt *st)
{
	pg_result_clear(ST(st));
	return DB_OK;
}

static int
db_pg_clear_bindings(struct db_stmt *st)
{
	struct db_pg_stmt *s = ST(st);
	int i;

	for (i = 0; i < s->nparams; i++) {
		free(s->binds[i].val);
		s->binds[i] = (struct pg_bind){ PG_NULL, NULL, 0 };
	}
	return DB_OK;
}

static int
db_pg_finalize(struct db_stmt *st)
{
	struct db_pg_stmt *s = ST(st);

	pg_result_clear(s);
	PQclear(s->desc);
	db_pg_clear_bindings(st);
	free(s->binds);
	free(s->used);
	free(s->sql);
	free(s);
	return DB_OK;
}

static int
db_pg_param_count(struct db_stmt *st)
{
	return ST(st)->nparams;
}

/* The slot of parameter idx (1-based), emptied; NULL out of range. */
static struct pg_bind *
pg_slot(struct db_pg_stmt *s, int idx)
{
	struct pg_bind *b;

	if (idx < 1 || idx > s->nparams) {
		pg_fail(s->db, DB_ERROR, "bind index out of range");
		return NULL;
	}
	b = &s->binds[idx - 1];
	free(b->val);
	*b = (struct pg_bind){ PG_NULL, NULL, 0 };
	return b;
}

static int
db_pg_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
	struct pg_bind *b = pg_slot(ST(st), idx);

	if (b == NULL)
		return DB_ERROR;
	b->kind = PG_INT;
	b->val = xasprintf("%" PRId64, v);
	return DB_OK;
}

/* Text goes in text format, NUL-terminated: a NUL inside it ends it
 * (PostgreSQL's text cannot hold one either). */
static int
db_pg_bind_text(struct db_stmt *st, int idx, const char *v, int len)
{
	struct pg_bind *b = pg_slot(ST(st), idx);

	if (b == NULL)
		return DB_ERROR;
	if (v == NULL)
		return DB_OK;
	b->kind = PG_TEXT;
	b->val = len < 0 ? xstrdup(v) : xstrndup(v, (size_t)len);
	return DB_OK;
}

static int
db_pg_bind_blob(struct db_stmt *st, int idx, const void *v, size_t len)
{
	struct db_pg_stmt *s = ST(st);
	struct pg_bind *b = pg_slot(s, idx);

	if (b == NULL)
		return DB_ERROR;
	if (len > INT_MAX)	/* paramLengths are ints */
		return pg_fail(s->db, DB_ERROR, "blob too large to bind");
	b->kind = PG_BLOB;
	b->val = xmalloc(len + 1);	/* never NULL: NULL is SQL NULL */
	if (len > 0)
		memcpy(b->val, v, len);
	b->len = (int)len;
	return DB_OK;
}

static int
db_pg_bind_null(struct db_stmt *st, int idx)
{
	return pg_slot(ST(st), idx) != NULL ? DB_OK : DB_ERROR;
}

/* The result's columns, or before the first step the statement's,
 * described by the server (one extra round trip, only for a caller
 * that asks first, like the privacy export's column names). */
static const PGresult *
pg_shape(struct db_pg_stmt *s)
{
	if (s->res != NULL)
		return s->res;
	if (s->desc == NULL)
		(void)pg_result(s->db, pg_run(s, 1), &s->desc);
	return s->desc;
}

static int
db_pg_col_count(struct db_stmt *st)
{
	const PGresult *r = pg_shape(ST(st));

	return r != NULL ? PQnfields(r) : 0;
}

static const char *
db_pg_col_name(struct db_stmt *st, int col)
{
	const PGresult *r = pg_shape(ST(st));

	return r != NULL ? PQfname(r, col) : NULL;
}

/* 1 if the current row has column col. */
static int
pg_has(const struct db_pg_stmt *s, int col)
{
	return s->state == PS_ROWS && s->res != NULL && s->row >= 0 &&
	    s->row < PQntuples(s->res) && col >= 0 && col < PQnfields(s->res);
}

static int
pg_is_null(const struct db_pg_stmt *s, int col)
{
	return !pg_has(s, col) || PQgetisnull(s->res, s->row, col);
}

/* A bytea value of the current row in bytes (text results spell it in
 * hex, docs 8.4.1): decoded once and kept until the row changes. */
static const struct pg_col *
pg_bytea(struct db_pg_stmt *s, int col)
{
	struct pg_col *c = &s->cols[col];
	unsigned char *raw;
	size_t n = 0;

	if (!c->done) {
		raw = PQunescapeBytea((const unsigned char *)PQgetvalue(s->res,
		    s->row, col), &n);
		if (raw == NULL)
			pd_fatal("db_pg: out of memory decoding bytea");
		c->buf = xmalloc(n + 1);
		memcpy(c->buf, raw, n);
		c->buf[n] = '\0';
		c->len = n;
		c->done = 1;
		PQfreemem(raw);
	}
	return c;
}

static int
pg_is_bytea(const struct db_pg_stmt *s, int col)
{
	return PQftype(s->res, col) == PG_BYTEAOID;
}

/* A numeric with no fraction is an integer, as SQLite's sum() of
 * integers is; PostgreSQL's sum(bigint) is numeric. */
static int
pg_numeric_type(const char *v)
{
	return strpbrk(v, ".eEN") == NULL ? DB_INTEGER : DB_FLOAT;
}

static int
db_pg_col_type(struct db_stmt *st, int col)
{
	struct db_pg_stmt *s = ST(st);

	if (pg_is_null(s, col))
		return DB_NULL;
	switch (PQftype(s->res, col)) {
	case PG_INT2OID:
	case PG_INT4OID:
	case PG_INT8OID:
	case PG_OIDOID:
	case PG_BOOLOID:	/* SQLite keeps booleans as 0 and 1 */
		return DB_INTEGER;
	case PG_FLOAT4OID:
	case PG_FLOAT8OID:
		return DB_FLOAT;
	case PG_NUMERICOID:
		return pg_numeric_type(PQgetvalue(s->res, s->row, col));
	case PG_BYTEAOID:
		return DB_BLOB;
	default:
		return DB_TEXT;
	}
}

static int64_t
db_pg_col_int64(struct db_stmt *st, int col)
{
	struct db_pg_stmt *s = ST(st);
	const char *v;

	if (pg_is_null(s, col))
		return 0;
	v = PQgetvalue(s->res, s->row, col);
	if (PQftype(s->res, col) == PG_BOOLOID)
		return v[0] == 't';
	return strtoll(v, NULL, 10);
}

static const char *
db_pg_col_text(struct db_stmt *st, int col)
{
	struct db_pg_stmt *s = ST(st);

	if (pg_is_null(s, col))
		return NULL;
	if (pg_is_bytea(s, col))
		return (const char *)pg_bytea(s, col)->buf;
	return PQgetvalue(s->res, s->row, col);
}

static const void *
db_pg_col_blob(struct db_stmt *st, int col)
{
	return db_pg_col_text(st, col);
}

static int
db_pg_col_bytes(struct db_stmt *st, int col)
{
	struct db_pg_stmt *s = ST(st);

	if (pg_is_null(s, col))
		return 0;
	if (pg_is_bytea(s, col))
		return (int)pg_bytea(s, col)->len;
	return PQgetlength(s->res, s->row, col);
}

static const struct db_ops db_pg_ops = {
	.name = "postgresql",
	.close = db_pg_close,
	.prepare = db_pg_prepare,
	.exec = db_pg_exec,
	.changes = db_pg_changes,
	.last_insert_id = db_pg_last_insert_id,
	.errmsg = db_pg_errmsg,
	.errcode = db_pg_errcode,
	.in_transaction = db_pg_in_transaction,
	.step = db_pg_step,
	.reset = db_pg_reset,
	.clear_bindings = db_pg_clear_bindings,
	.finalize = db_pg_finalize,
	.param_count = db_pg_param_count,
	.bind_int64 = db_pg_bind_int64,
	.bind_text = db_pg_bind_text,
	.bind_blob = db_pg_bind_blob,
	.bind_null = db_pg_bind_null,
	.col_count = db_pg_col_count,
	.col_name = db_pg_col_name,
	.col_type = db_pg_col_type,
	.col_int64 = db_pg_col_int64,
	.col_text = db_pg_col_text,
	.col_blob = db_pg_col_blob,
	.col_bytes = db_pg_col_bytes,
};

/* ---- opening ---- */

/* Notices (CREATE ... IF NOT EXISTS skipping, say) are not failures:
 * libpq's default processor prints them on stderr (docs 34.13), and a
 * driver never prints. */
static void
pg_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Where libpq tried, for an error that must name it: the socket file
 * for a Unix-domain host (a path), else host and port. */
static void
pg_where(PGconn *conn, char *buf, size_t len)
{
	const char *h = conn != NULL ? PQhost(conn) : NULL;
	const char *p = conn != NULL ? PQport(conn) : NULL;

	if (p == NULL || *p == '\0')
		p = "5432";
	if (h == NULL || *h == '\0')
		snprintf(buf, len, "the default socket");
	else if (h[0] == '/' || h[0] == '@')
		snprintf(buf, len, "socket %s/.s.PGSQL.%s", h, p);
	else
		snprintf(buf, len, "host %s port %s", h, p);
}

/*
 * synchronous_commit is the promise behind the 250 (issue 18): a COMMIT
 * returns after its WAL is flushed.  A server or role configured with
 * it off would break that silently, so this session turns it on; local
 * and the remote_* levels (which wait for a standby as well) are kept
 * (docs 20.5.1, synchronous_commit).
 */
static int
pg_session(struct db_pg *d)
{
	PGresult *res = NULL;
	int off, rc;

	if (PQsetClientEncoding(d->conn, "UTF8") != 0)
		return pg_fail(d, DB_ERROR, PQerrorMessage(d->conn));
	rc = pg_result(d, PQexec(d->conn, "SHOW synchronous_commit"), &res);
	if (rc != DB_OK)
		return rc;
	off = PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), "off") == 0;
	PQclear(res);
	return off ? db_pg_exec(&d->base, "SET synchronous_commit = on") :
	    DB_OK;
}

/*
 * Connect with a libpq connection string or URI.  Its own keywords win
 * over the defaults set before it (docs 34.1.2: the last value of a
 * repeated keyword is used): a 10 s connect timeout, so a host that
 * drops packets does not hang the start, and the application name
 * pg_stat_activity shows.  err never quotes the DSN (it may hold a
 * password): it names where libpq tried and why it failed.
 */
int
db_pg_open(const char *dsn, struct db **db_r, char *err)
{
	static const char *const kw[] = { "connect_timeout",
	    "fallback_application_name", "dbname", NULL };
	const char *const val[] = { "10", "postdoc", dsn, NULL };
	struct db_pg *d;
	char where[256], *perr = NULL;
	PQconninfoOption *opts;
	int rc;

	*db_r = NULL;
	/* What libpq would expand (docs 34.1.1); a bare word is a
	 * database name.  Parsed first so a wrong DSN is told apart from a
	 * server that is down. */
	if (strchr(dsn, '=') != NULL || strncmp(dsn, "postgresql://", 13) == 0
	    || strncmp(dsn, "postgres://", 11) == 0) {
		if ((opts = PQconninfoParse(dsn, &perr)) == NULL) {
			d = xcalloc(1, sizeof(*d));
			pg_set_msg(d, perr != NULL ? perr : "out of memory",
			    NULL);
			pd_err(err, "postgresql: invalid DSN: %s", d->msg);
			PQfreemem(perr);
			free(d);
			return DB_ERROR;
		}
		PQconninfoFree(opts);
	}
	d = xcalloc(1, sizeof(*d));
	d->base.ops = &db_pg_ops;
	d->conn = PQconnectdbParams(kw, val, 1);
	if (d->conn == NULL)
		pd_fatal("db_pg: out of memory connecting");
	PQsetNoticeProcessor(d->conn, pg_notice, NULL);
	/* Errors in one line without DETAIL, HINT or CONTEXT (docs 34.11,
	 * PQsetErrorVerbosity): those quote the row ("Key (email)=(...)
	 * already exists"), and the store's messages reach logs and API
	 * answers.  The primary text names the constraint; the server's own
	 * log keeps the rest for whoever debugs. */
	PQsetErrorVerbosity(d->conn, PQERRORS_TERSE);
	if (PQstatus(d->conn) != CONNECTION_OK)
		rc = pg_fail(d, DB_IOERR, PQerrorMessage(d->conn));
	else
		rc = pg_session(d);
	if (rc != DB_OK) {
		pg_where(d->conn, where, sizeof(where));
		pd_err(err, "postgresql at %s: %s", where, d->msg);
		db_pg_close(&d->base);
		return rc;
	}
	*db_r = &d->base;
	return DB_OK;
}

/* PQreset closes and opens again with the same parameters (docs 34.1,
 * PQreset), notice processor kept; the session is set up again. */
int
db_pg_reconnect(struct db *db, char *err)
{
	struct db_pg *d = DB(db);
	char where[256];
	int rc;

	PQreset(d->conn);
	if (PQstatus(d->conn) != CONNECTION_OK)
		rc = pg_fail(d, DB_IOERR, PQerrorMessage(d->conn));
	else
		rc = pg_session(d);
	if (rc != DB_OK) {
		pg_where(d->conn, where, sizeof(where));
		pd_err(err, "postgresql at %s: %s", where, d->msg);
	}
	return rc;
}

int
db_is_pg(const struct db *db)
{
	return db != NULL && db->ops == &db_pg_ops;
}
