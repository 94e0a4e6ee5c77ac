// A thin RAII layer over the SQLite C API (the store's only way to talk to SQLite).
// Db owns a connection, Stmt a prepared statement (finalized in its destructor), Txn a transaction
// that rolls back in its destructor unless commit() was called. Every failure throws SqlError,
// which carries SQLite's extended result code and the statement's SQL.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engine/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sluice::history {

struct SqlError : Error {
    SqlError(const std::string& msg, int code, int sys_errno, std::string sql);
    int code() const { return code_; }           // extended result code (SQLITE_IOERR_WRITE, ...)
    int sys_errno() const { return errno_; }     // the OS error behind an I/O error, else 0
    const std::string& sql() const { return sql_; }
    bool disk_full() const;                      // SQLITE_FULL, or a write refused with ENOSPC/EFBIG/EDQUOT

private:
    int code_, errno_;
    std::string sql_;
};

class Db;

class Stmt {
public:
    Stmt(Db& db, std::string_view sql);
    ~Stmt();
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    // Parameters are 1-based, as in SQL's ?1, ?2.
    Stmt& bind(int i, int64_t v);
    Stmt& bind(int i, double v);
    Stmt& bind(int i, std::string_view v);       // copied by SQLite
    Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    Stmt& bind(int i, std::optional<double> v);  // nullopt binds NULL
    Stmt& bind_blob(int i, std::span<const uint8_t> v);  // not copied: must outlive step()
    Stmt& bind_null(int i);

    // True while a row is available; false when done. Errors throw.
    bool step();
    // step() for statements that return no rows.
    void run();
    void reset();  // to run again with new bindings

    bool is_null(int col) const;
    int64_t i64(int col) const;
    double f64(int col) const;
    std::optional<double> opt_f64(int col) const;
    std::string str(int col) const;
    std::span<const uint8_t> blob(int col) const;  // valid until the next step/reset

private:
    [[noreturn]] void fail(int rc) const;
    Db& db_;
    sqlite3_stmt* s_ = nullptr;
};

class Db {
public:
    // flags: SQLITE_OPEN_* (default read-write, create). Opening does not read the file; the first
    // statement does (a non-database file fails there with SQLITE_NOTADB).
    explicit Db(const std::string& path, int flags = 0);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    // Runs one or more statements that return no rows we need.
    void exec(std::string_view sql);
    // The first column of the first row (e.g. a PRAGMA); SqlError if there is no row.
    int64_t scalar_i64(std::string_view sql);
    std::string scalar_str(std::string_view sql);
    int64_t last_insert_rowid() const;
    int64_t changes() const;
    const std::string& path() const { return path_; }
    sqlite3* handle() { return db_; }

    [[noreturn]] void fail(int rc, std::string_view sql) const;

private:
    sqlite3* db_ = nullptr;
    std::string path_;
};

// BEGIN IMMEDIATE (takes the write lock at once, so two writers wait on busy_timeout instead of
// failing halfway); ROLLBACK in the destructor unless commit() succeeded.
class Txn {
public:
    explicit Txn(Db& db);
    ~Txn();
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    void commit();

private:
    Db& db_;
    bool done_ = false;
};

}  // namespace sluice::history
