/* The schema migrations compiled into the binary (generated from migrations/ by cmake/embed_migrations.cmake). */
#ifndef STORE_MIGRATIONS_H
#define STORE_MIGRATIONS_H

typedef struct st_store_migration_t {
    int version;
    const char *name;
    const char *sql;
} store_migration_t;

/** In ascending version order. */
extern const store_migration_t store_migrations[];
extern const int store_migration_count;

#endif
