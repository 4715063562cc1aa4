/*
 * api_cli.h - not written yet.
 */
#ifndef PD_API_CLI_H
#define PD_API_CLI_H

#endif
