/* Configuration: defaults, YAML, environment precedence and clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "util/config.h"

static char *const empty_env[] = {NULL};

static char *write_yaml(const char *text)
{
    char *path = strdup("/tmp/fhirsched-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    util_config_t cfg;
    char err[256];
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, empty_env, err, sizeof(err)), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.base_url, "http://127.0.0.1:8080/fhir");
    assert_int_equal(cfg.http_max_body_bytes, 8 * 1024 * 1024);
    assert_true(cfg.threads >= 1);
    util_config_dispose(&cfg);
}

static void test_yaml_then_env(void **state)
{
    char *path = write_yaml("listen: 0.0.0.0:9090\ndatabase:\n  url: postgresql://db/x\n  pool_size: 7\nhttp:\n  max_body_bytes: 2MiB\n");
    char *env[] = {"FHIRSCHED_DATABASE_POOL_SIZE=3", "FHIRSCHED_THREADS=2", "UNRELATED=1", NULL};
    util_config_t cfg;
    char err[256];
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, path, env, err, sizeof(err)), 0);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9090);
    assert_string_equal(cfg.database_url, "postgresql://db/x");
    assert_int_equal(cfg.database_pool_size, 3); /* the environment wins */
    assert_int_equal(cfg.threads, 2);
    assert_int_equal(cfg.http_max_body_bytes, 2 * 1024 * 1024);
    assert_string_equal(cfg.base_url, "http://127.0.0.1:9090/fhir");
    util_config_dispose(&cfg);
    unlink(path);
    free(path);
}

static void test_bad_values_name_the_setting(void **state)
{
    util_config_t cfg;
    char err[256];
    char *env1[] = {"FHIRSCHED_THREADS=many", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "FHIRSCHED_THREADS"));
    assert_non_null(strstr(err, "threads"));
    util_config_dispose(&cfg);

    char *env2[] = {"FHIRSCHED_LISTEN=8080", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "host:port"));
    util_config_dispose(&cfg);

    char *env3[] = {"FHIRSCHED_LOG_ACCESS=maybe", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env3, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "true or false"));
    util_config_dispose(&cfg);
}

static void test_number_edge_cases(void **state)
{
    util_config_t cfg;
    char err[256];
    /* size suffixes only where the setting is a size */
    char *env1[] = {"FHIRSCHED_THREADS=2k", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env1, err, sizeof(err)), -1);
    util_config_dispose(&cfg);
    /* a suffix that would wrap around is refused, not wrapped into range */
    char *env2[] = {"FHIRSCHED_HTTP_MAX_BODY_BYTES=17179869185G", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "http.max_body_bytes"));
    util_config_dispose(&cfg);
    /* an empty variable is as good as unset */
    char *env3[] = {"FHIRSCHED_TLS_CERT_FILE=", "FHIRSCHED_THREADS=", NULL};
    util_config_defaults(&cfg);
    unsigned threads = cfg.threads;
    assert_int_equal(util_config_load(&cfg, NULL, env3, err, sizeof(err)), 0);
    assert_null(cfg.tls_cert_file);
    assert_int_equal(cfg.threads, threads);
    util_config_dispose(&cfg);
}

static void test_yaml_errors_carry_position(void **state)
{
    char *path = write_yaml("listen: 127.0.0.1:1\ndatabse:\n  url: x\n");
    util_config_t cfg;
    char err[256];
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, path, empty_env, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":3:"));
    assert_non_null(strstr(err, "unknown setting \"databse.url\""));
    util_config_dispose(&cfg);
    unlink(path);
    free(path);

    path = write_yaml("listen: [a, b\n");
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, path, empty_env, err, sizeof(err)), -1);
    util_config_dispose(&cfg);
    unlink(path);
    free(path);

    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, "/nonexistent/fhirsched.yaml", empty_env, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open"));
    util_config_dispose(&cfg);
}

static void test_hl7_settings(void **state)
{
    /* hl7.outbound is the one setting that takes a list (its items are joined); hl7.listen is checked as host:port */
    char *path = write_yaml("hl7:\n  listen: 127.0.0.1:2575\n  outbound:\n    - mllp://10.0.0.5:2576?name=a\n"
                            "    - mllp://10.0.0.6:2576?name=b\n  max_attempts: 3\n");
    util_config_t cfg;
    char err[256];
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, path, empty_env, err, sizeof(err)), 0);
    assert_string_equal(cfg.hl7_listen, "127.0.0.1:2575");
    assert_string_equal(cfg.hl7_outbound, "mllp://10.0.0.5:2576?name=a mllp://10.0.0.6:2576?name=b");
    assert_int_equal(cfg.hl7_max_attempts, 3);
    assert_string_equal(cfg.hl7_sending_application, "FHIRSCHED");
    util_config_dispose(&cfg);
    unlink(path);
    free(path);

    const char *bad[] = {"hl7:\n  outbound:\n    - name: a\n", "database:\n  url:\n    - x\n", "hl7:\n  listen: nowhere\n"};
    const char *says[] = {"mllp://host:port", "only hl7.outbound takes a list", "hl7.listen must be host:port"};
    for (size_t i = 0; i != 3; ++i) {
        path = write_yaml(bad[i]);
        util_config_defaults(&cfg);
        assert_int_equal(util_config_load(&cfg, path, empty_env, err, sizeof(err)), -1);
        if (strstr(err, says[i]) == NULL)
            fail_msg("%s: %s", bad[i], err);
        util_config_dispose(&cfg);
        unlink(path);
        free(path);
    }
    char *env[] = {"FHIRSCHED_HL7_TLS_CERT_FILE=/x.pem", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "hl7.tls_cert_file and hl7.tls_key_file must be set together"));
    util_config_dispose(&cfg);
}

static void test_tls_pair_and_base_url(void **state)
{
    util_config_t cfg;
    char err[256];
    char *env1[] = {"FHIRSCHED_TLS_CERT_FILE=/x.pem", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "together"));
    util_config_dispose(&cfg);

    char *env2[] = {"FHIRSCHED_BASE_URL=https://clinic.example/fhir/", NULL};
    util_config_defaults(&cfg);
    assert_int_equal(util_config_load(&cfg, NULL, env2, err, sizeof(err)), 0);
    assert_string_equal(cfg.base_url, "https://clinic.example/fhir");
    util_config_dispose(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_yaml_then_env),
        cmocka_unit_test(test_bad_values_name_the_setting),
        cmocka_unit_test(test_number_edge_cases),
        cmocka_unit_test(test_yaml_errors_carry_position),
        cmocka_unit_test(test_tls_pair_and_base_url),
        cmocka_unit_test(test_hl7_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
