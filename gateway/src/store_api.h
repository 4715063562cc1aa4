/*
 * store_api.h - not written yet.
 */
#ifndef PD_STORE_API_H
#define PD_STORE_API_H

#endif
