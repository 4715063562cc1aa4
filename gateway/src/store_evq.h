/*
 * store_evq.h - not written yet.
 */
#ifndef PD_STORE_EVQ_H
#define PD_STORE_EVQ_H

#endif
