// OpenSSL's libcrypto, for SHA-256 (hardware-accelerated where the CPU has SHA extensions).
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
