-- Downgrade of revision 0007 (functions): drops the tenant-scoped overloads added by
-- 0007_tenant_functions.sql. The original signatures, which 0007 turned into default-tenant wrappers, are
-- restored afterwards by re-running 0001_functions.sql.

DROP FUNCTION IF EXISTS find_contact_by_email(uuid, text);
DROP FUNCTION IF EXISTS find_contact_by_mc_id(uuid, text);
DROP FUNCTION IF EXISTS find_contact_by_ghl_id(uuid, text);
DROP FUNCTION IF EXISTS find_contact_by_phone(uuid, text);
DROP FUNCTION IF EXISTS find_contact_smart(uuid, text, text, text, text);
DROP FUNCTION IF EXISTS create_contact_with_mc_id(uuid, text, timestamptz, text);
DROP FUNCTION IF EXISTS update_contact_dynamic(uuid, uuid, jsonb);
DROP FUNCTION IF EXISTS link_orphan_payments(uuid, text);
DROP FUNCTION IF EXISTS get_attribution_stats(uuid);
DROP FUNCTION IF EXISTS fn_get_weekly_report(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS fn_calculate_mom_growth(uuid);
DROP FUNCTION IF EXISTS fn_get_cohort_analysis(uuid, date);
DROP FUNCTION IF EXISTS fn_get_ad_performance_summary(uuid, date, date);
DROP FUNCTION IF EXISTS fn_calculate_wow_changes(uuid, date);
DROP FUNCTION IF EXISTS fn_get_report_memory(uuid, date);
