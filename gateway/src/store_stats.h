/*
 * store_stats.h - not written yet.
 */
#ifndef PD_STORE_STATS_H
#define PD_STORE_STATS_H

#endif
