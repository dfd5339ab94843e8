#include "CSQLiteTuning.h"

/* The SQLite that sqlite-nio vendors, with its prefixed names; declared here rather than through
   its header, which belongs to a target of that package that is not a product. */
extern int sqlite_nio_sqlite3_db_config(void *connection, int op, ...);

/* From sqlite3.h. */
#define NIMBUS_SQLITE_DBCONFIG_ENABLE_QPSG 1007

int nimbus_sqlite_enable_qpsg(void *connection) {
    return sqlite_nio_sqlite3_db_config(connection, NIMBUS_SQLITE_DBCONFIG_ENABLE_QPSG, 1, (int *)0);
}
