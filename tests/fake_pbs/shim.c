/* A stand-in for Torque's libtorque.so.2 or OpenPBS's libpbs.so, for vmsched-pbs's tests.
 *
 * The IFL functions vmsched-pbs's cffi backend calls, with pbs_ifl.h's names, arguments
 * and structures, compiled into a real shared library that the backend dlopen()s like the
 * real one. What each call does is the fake server's (Python, through the callbacks given
 * to shim_init); what the library itself does is done here, as the real ones do it:
 * status lists are malloc()ed and must come back to pbs_statfree() exactly once (shim_live
 * counts them), pbs_errno is a plain int (Torque) or sits behind __pbs_errno_location()
 * (OpenPBS), and pbs_geterrmsg() hands over a strdup() the caller frees (Torque) or the
 * connection's own buffer, which the caller must not free (OpenPBS): a wrong free() is a
 * crash here, as there.
 */
#include <stdlib.h>
#include <string.h>

struct attrl { struct attrl *next; char *name; char *resource; char *value; int op; };
struct attropl { struct attropl *next; char *name; char *resource; char *value; int op; };
struct batch_status { struct batch_status *next; char *name; struct attrl *attribs; char *text; };

typedef int (*connect_cb)(const char *server);
typedef int (*request_cb)(int connect, const char *request, const char *id, const char *arg,
                          const char *extend, void *attrs, int command, int objtype);

static connect_cb py_connect;
static request_cb py_request;
static int torque;
static struct batch_status *head, *tail;
static char *errtxt;
static int live;

int pbs_errno = 0;                                   /* Torque: extern int pbs_errno */
static int errno_cell;
int *__pbs_errno_location(void) { errno_cell = pbs_errno; return &errno_cell; }   /* OpenPBS */

void shim_init(connect_cb c, request_cb r, int is_torque) {
    py_connect = c; py_request = r; torque = is_torque;
}

int shim_live(void) { return live; }

static char *dup(const char *s) { return s ? strdup(s) : NULL; }

/* the Python side builds a stat's answer with these, while it serves the request */
struct batch_status *shim_status(const char *name) {
    struct batch_status *bs = calloc(1, sizeof *bs);
    bs->name = dup(name);
    if (tail) tail->next = bs; else head = bs;
    tail = bs;
    return bs;
}

void shim_attr(struct batch_status *bs, const char *name, const char *resource, const char *value) {
    struct attrl *a = calloc(1, sizeof *a), **p = &bs->attribs;
    a->name = dup(name); a->resource = dup(resource); a->value = dup(value);
    while (*p) p = &(*p)->next;
    *p = a;
}

void shim_error(int code, const char *text) {
    pbs_errno = code;
    free(errtxt);
    errtxt = dup(text);
}

void pbs_statfree(struct batch_status *bs) {
    if (!bs) return;
    live--;
    while (bs) {
        struct batch_status *next = bs->next;
        struct attrl *a = bs->attribs;
        while (a) {
            struct attrl *an = a->next;
            free(a->name); free(a->resource); free(a->value); free(a);
            a = an;
        }
        free(bs->name); free(bs->text); free(bs);
        bs = next;
    }
}

static struct batch_status *status(const char *request, int c, const char *id, struct attrl *attrib,
                                   const char *extend) {
    head = tail = NULL;
    pbs_errno = 0;
    if (py_request(c, request, id, NULL, extend, attrib, 0, 0) != 0 || !head) {
        struct batch_status *drop = head;
        head = tail = NULL;
        if (drop) { live++; pbs_statfree(drop); }
        return NULL;
    }
    live++;
    return head;
}

int pbs_connect(char *server) { pbs_errno = 0; return py_connect(server); }
int pbs_disconnect(int c) { return py_request(c, "disconnect", NULL, NULL, NULL, NULL, 0, 0); }

char *pbs_geterrmsg(int c) {
    (void)c;
    if (!errtxt) return NULL;
    return torque ? strdup(errtxt) : errtxt;
}

char *pbs_strerror(int err) { (void)err; return NULL; }
char *pbse_to_txt(int err) { (void)err; return NULL; }

struct batch_status *pbs_statserver(int c, struct attrl *a, char *e) { return status("statserver", c, NULL, a, e); }
struct batch_status *pbs_statque(int c, char *id, struct attrl *a, char *e) { return status("statque", c, id, a, e); }
struct batch_status *pbs_statnode(int c, char *id, struct attrl *a, char *e) { return status("statnode", c, id, a, e); }
struct batch_status *pbs_statvnode(int c, char *id, struct attrl *a, char *e) { return status("statvnode", c, id, a, e); }
struct batch_status *pbs_statjob(int c, char *id, struct attrl *a, char *e) { return status("statjob", c, id, a, e); }

int pbs_runjob(int c, char *job, char *loc, char *e) { pbs_errno = 0; return py_request(c, "runjob", job, loc, e, NULL, 0, 0); }
int pbs_sigjob(int c, char *job, char *sig, char *e) { pbs_errno = 0; return py_request(c, "sigjob", job, sig, e, NULL, 0, 0); }
int pbs_rerunjob(int c, char *job, char *e) { pbs_errno = 0; return py_request(c, "rerunjob", job, NULL, e, NULL, 0, 0); }
int pbs_movejob(int c, char *job, char *dest, char *e) { pbs_errno = 0; return py_request(c, "movejob", job, dest, e, NULL, 0, 0); }
int pbs_alterjob(int c, char *job, struct attrl *a, char *e) { pbs_errno = 0; return py_request(c, "alterjob", job, NULL, e, a, 0, 0); }
int pbs_manager(int c, int command, int objtype, char *name, struct attropl *a, char *e) {
    pbs_errno = 0;
    return py_request(c, "manager", name, NULL, e, a, command, objtype);
}
