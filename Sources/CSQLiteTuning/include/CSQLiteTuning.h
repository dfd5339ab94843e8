#ifndef C_SQLITE_TUNING_H
#define C_SQLITE_TUNING_H

/// Turns on SQLite's query planner stability guarantee for one connection (`sqlite3_db_config`
/// is variadic, which Swift cannot call). Returns SQLite's result code.
int nimbus_sqlite_enable_qpsg(void *connection);

#endif
