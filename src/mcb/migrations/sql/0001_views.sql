-- Revision 0001: the original's 21 global analytics views (spec section 1.2, "Views present before the
-- migration"). They know nothing about tenants; revision 0007 replaces them with tenant-aware versions of
-- the same names. Each view is dropped first so that this file can be re-run (downgrade of 0007).
--
-- Deviations from the original SQL, kept deliberately small: divisions are guarded with NULLIF (the
-- original v_data_quality divided by COUNT(*) and failed on an empty table), "live" means "not
-- historical" including NULL sources, the Meta views aggregate contacts per ad before joining so that
-- an ad's spend is not multiplied by its number of contacts, and the hist_* views aggregate payments
-- per email before joining so that contacts are not counted once per payment.

-- ---------------------------------------------------------------------------------------------------------
-- Contact / payment views (cohort by subscribe week unless stated)
-- ---------------------------------------------------------------------------------------------------------

DROP VIEW IF EXISTS v_weekly_performance;
CREATE VIEW v_weekly_performance AS
SELECT
    date_trunc('week', subscribe_date) AS week_start,
    date_trunc('week', subscribe_date) + interval '6 days' AS week_end,
    COUNT(*) AS total_contacts,
    COUNT(*) FILTER (WHERE source LIKE '%\_historical%') AS historical_contacts,
    COUNT(*) FILTER (WHERE source IS NULL OR source NOT LIKE '%\_historical%') AS live_contacts,
    COUNT(*) FILTER (WHERE ad_id IS NOT NULL) AS paid_contacts,
    COUNT(*) FILTER (WHERE ad_id IS NULL) AS organic_contacts,
    COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) AS qualified,
    COUNT(*) FILTER (WHERE link_click_date IS NOT NULL) AS clicked_link,
    COUNT(*) FILTER (WHERE form_submit_date IS NOT NULL) AS submitted_form,
    COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) AS booked_meeting,
    COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL) AS attended_meeting,
    COUNT(*) FILTER (WHERE checkout_started IS NOT NULL) AS started_checkout,
    COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS purchased,
    COALESCE(SUM(purchase_amount), 0) AS total_revenue,
    ROUND(AVG(purchase_amount) FILTER (WHERE purchase_date IS NOT NULL), 2) AS avg_order_value,
    ROUND(100.0 * COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS qualification_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS booking_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE appointment_date IS NOT NULL), 0), 1) AS show_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS overall_conversion_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL), 0), 1) AS close_rate
FROM contacts
WHERE subscribe_date IS NOT NULL
GROUP BY date_trunc('week', subscribe_date);

DROP VIEW IF EXISTS v_funnel_metrics;
CREATE VIEW v_funnel_metrics AS
SELECT
    source,
    CASE WHEN ad_id IS NOT NULL THEN 'Paid' ELSE 'Organic' END AS traffic_type,
    chatbot_ab,
    COUNT(*) AS entered_funnel,
    COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) AS qualified,
    COUNT(*) FILTER (WHERE link_send_date IS NOT NULL) AS link_sent,
    COUNT(*) FILTER (WHERE link_click_date IS NOT NULL) AS link_clicked,
    COUNT(*) FILTER (WHERE form_submit_date IS NOT NULL) AS form_submitted,
    COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) AS meeting_booked,
    COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL) AS meeting_held,
    COUNT(*) FILTER (WHERE checkout_started IS NOT NULL) AS checkout_started,
    COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS purchased,
    ROUND(100.0 * COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS qualify_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE link_click_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE link_send_date IS NOT NULL), 0), 1) AS click_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE form_submit_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE link_click_date IS NOT NULL), 0), 1) AS form_submit_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE form_submit_date IS NOT NULL), 0), 1) AS booking_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE appointment_date IS NOT NULL), 0), 1) AS show_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL), 0), 1) AS close_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS overall_conversion
FROM contacts
WHERE subscribe_date IS NOT NULL
GROUP BY source, (ad_id IS NOT NULL), chatbot_ab;

-- Per payment week over paid/active payments (refunds excluded).
DROP VIEW IF EXISTS v_revenue_breakdown;
CREATE VIEW v_revenue_breakdown AS
SELECT
    date_trunc('week', payment_date) AS week_start,
    COUNT(*) FILTER (WHERE payment_source = 'stripe') AS stripe_payments,
    COUNT(*) FILTER (WHERE payment_source = 'denefits') AS denefits_payments,
    COALESCE(SUM(amount) FILTER (WHERE payment_source = 'stripe'), 0) AS stripe_revenue,
    COALESCE(SUM(amount) FILTER (WHERE payment_source = 'denefits'), 0) AS denefits_revenue,
    COUNT(*) FILTER (WHERE payment_type = 'buy_in_full') AS buy_in_full_count,
    COUNT(*) FILTER (WHERE payment_type = 'buy_now_pay_later') AS bnpl_count,
    COALESCE(SUM(amount) FILTER (WHERE payment_type = 'buy_in_full'), 0) AS buy_in_full_revenue,
    COALESCE(SUM(amount) FILTER (WHERE payment_type = 'buy_now_pay_later'), 0) AS bnpl_revenue,
    COUNT(*) AS total_payments,
    COUNT(DISTINCT contact_id) AS unique_customers,
    SUM(amount) AS total_revenue,
    ROUND(AVG(amount), 2) AS avg_order_value,
    MIN(amount) AS min_order,
    MAX(amount) AS max_order,
    COUNT(*) FILTER (WHERE contact_id IS NULL) AS orphan_payments,
    COALESCE(SUM(amount) FILTER (WHERE contact_id IS NULL), 0) AS orphan_revenue,
    ROUND(100.0 * COUNT(*) FILTER (WHERE contact_id IS NULL) / NULLIF(COUNT(*), 0), 1) AS orphan_rate
FROM payments
WHERE status IN ('paid', 'active') AND payment_type <> 'refund'
GROUP BY date_trunc('week', payment_date);

DROP VIEW IF EXISTS v_timing_analysis;
CREATE VIEW v_timing_analysis AS
SELECT
    date_trunc('week', subscribe_date) AS week_start,
    ROUND((AVG(EXTRACT(EPOCH FROM purchase_date - subscribe_date)) / 86400)::numeric, 1) AS avg_days_subscribe_to_purchase,
    ROUND((AVG(EXTRACT(EPOCH FROM appointment_date - subscribe_date)) / 86400)::numeric, 1) AS avg_days_subscribe_to_booking,
    ROUND((AVG(EXTRACT(EPOCH FROM link_click_date - link_send_date)) / 3600)::numeric, 1) AS avg_hours_link_send_to_click,
    ROUND((AVG(EXTRACT(EPOCH FROM form_submit_date - link_click_date)) / 3600)::numeric, 1) AS avg_hours_click_to_form,
    ROUND((AVG(EXTRACT(EPOCH FROM appointment_date - form_submit_date)) / 3600)::numeric, 1) AS avg_hours_form_to_booking,
    ROUND((AVG(EXTRACT(EPOCH FROM appointment_held_date - appointment_date)) / 86400)::numeric, 1) AS avg_days_booking_to_meeting,
    ROUND((AVG(EXTRACT(EPOCH FROM purchase_date - appointment_held_date)) / 86400)::numeric, 1) AS avg_days_meeting_to_purchase,
    ROUND((AVG(EXTRACT(EPOCH FROM purchase_date - checkout_started)) / 3600)::numeric, 1) AS avg_hours_checkout_to_purchase,
    COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS purchases_this_week,
    COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) AS bookings_this_week
FROM contacts
WHERE subscribe_date IS NOT NULL
GROUP BY date_trunc('week', subscribe_date);

-- Last 90 days by ad (or 'organic') x source x trigger word x chatbot variant; at least 3 contacts.
DROP VIEW IF EXISTS v_attribution_summary;
CREATE VIEW v_attribution_summary AS
SELECT
    COALESCE(ad_id, 'organic') AS ad_campaign,
    source,
    trigger_word,
    chatbot_ab,
    COUNT(*) AS total_contacts,
    COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) AS qualified_contacts,
    COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) AS booked_meetings,
    COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL) AS held_meetings,
    COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS customers,
    COALESCE(SUM(purchase_amount), 0) AS total_revenue,
    ROUND(AVG(purchase_amount) FILTER (WHERE purchase_date IS NOT NULL), 2) AS avg_order_value,
    ROUND(COALESCE(SUM(purchase_amount), 0) / NULLIF(COUNT(*), 0), 2) AS revenue_per_lead,
    ROUND(100.0 * COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS qualification_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS booking_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL)
          / NULLIF(COUNT(*) FILTER (WHERE appointment_date IS NOT NULL), 0), 1) AS show_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS conversion_rate,
    ROUND((AVG(EXTRACT(EPOCH FROM purchase_date - subscribe_date)) / 86400)::numeric, 1) AS avg_days_to_purchase
FROM contacts
WHERE subscribe_date >= now() - interval '90 days'
GROUP BY COALESCE(ad_id, 'organic'), source, trigger_word, chatbot_ab
HAVING COUNT(*) >= 3;

-- Last 90 days by the qualification answers (v2.1 meaning: Q1 = months postpartum, Q2 = symptoms);
-- at least 3 contacts; intent score = conversion % x AOV / 3000.
DROP VIEW IF EXISTS v_symptom_performance;
CREATE VIEW v_symptom_performance AS
SELECT
    q1_question AS months_postpartum,
    q2_question AS symptoms,
    objections AS common_objections,
    COUNT(*) AS contact_count,
    COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) AS qualified_count,
    COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) AS booking_count,
    COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS purchase_count,
    COALESCE(SUM(purchase_amount), 0) AS total_revenue,
    ROUND(AVG(purchase_amount) FILTER (WHERE purchase_date IS NOT NULL), 2) AS avg_order_value,
    ROUND(100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS conversion_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1) AS booking_rate,
    ROUND((100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) / NULLIF(COUNT(*), 0))
          * COALESCE(AVG(purchase_amount) FILTER (WHERE purchase_date IS NOT NULL), 0) / 3000.0, 1) AS intent_score
FROM contacts
WHERE subscribe_date >= now() - interval '90 days'
  AND (q1_question IS NOT NULL OR q2_question IS NOT NULL OR objections IS NOT NULL)
GROUP BY q1_question, q2_question, objections
HAVING COUNT(*) >= 3;

-- Coverage of ids, emails, phone, names, attribution, timeline and historical share (one row).
DROP VIEW IF EXISTS v_data_quality;
CREATE VIEW v_data_quality AS
SELECT
    COUNT(*) AS total_contacts,
    COUNT(mc_id) AS has_mc_id,
    COUNT(ghl_id) AS has_ghl_id,
    COUNT(*) FILTER (WHERE mc_id IS NOT NULL AND ghl_id IS NOT NULL) AS has_both_ids,
    COUNT(ad_id) AS has_ad_id,
    COUNT(stripe_customer_id) AS has_stripe_id,
    ROUND(100.0 * COUNT(*) FILTER (WHERE mc_id IS NOT NULL AND ghl_id IS NOT NULL) / NULLIF(COUNT(mc_id), 0), 1) AS mc_to_ghl_linkage_rate,
    COUNT(email_primary) AS has_email_primary,
    COUNT(email_booking) AS has_email_booking,
    COUNT(email_payment) AS has_email_payment,
    COUNT(phone) AS has_phone,
    COUNT(first_name) AS has_first_name,
    COUNT(last_name) AS has_last_name,
    COUNT(trigger_word) AS has_trigger_word,
    COUNT(chatbot_ab) AS has_ab_test,
    COUNT(q1_question) AS has_q1,
    COUNT(q2_question) AS has_q2,
    COUNT(subscribe_date) AS has_subscribe_date,
    COUNT(dm_qualified_date) AS has_qualified_date,
    COUNT(appointment_date) AS has_booking_date,
    COUNT(appointment_held_date) AS has_meeting_date,
    COUNT(purchase_date) AS has_purchase_date,
    COUNT(*) FILTER (WHERE source LIKE '%\_historical%') AS historical_contacts,
    COUNT(*) FILTER (WHERE source IS NULL OR source NOT LIKE '%\_historical%') AS live_contacts,
    ROUND(100.0 * COUNT(mc_id) / NULLIF(COUNT(*), 0), 1) AS mc_id_pct,
    ROUND(100.0 * COUNT(ghl_id) / NULLIF(COUNT(*), 0), 1) AS ghl_id_pct,
    ROUND(100.0 * COUNT(ad_id) / NULLIF(COUNT(*), 0), 1) AS ad_id_pct,
    ROUND(100.0 * COUNT(q1_question) / NULLIF(COUNT(*), 0), 1) AS symptom_data_pct,
    ROUND(100.0 * COUNT(*) FILTER (WHERE source LIKE '%\_historical%') / NULLIF(COUNT(*), 0), 1) AS historical_pct
FROM contacts;

-- ---------------------------------------------------------------------------------------------------------
-- Meta Ads views (active ads; contacts attributed by contacts.ad_id)
-- ---------------------------------------------------------------------------------------------------------

DROP VIEW IF EXISTS v_ad_roas_by_theme;
CREATE VIEW v_ad_roas_by_theme AS
WITH ad_contacts AS (
    SELECT ad_id,
           COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS customers,
           COALESCE(SUM(purchase_amount), 0) AS revenue
    FROM contacts WHERE ad_id IS NOT NULL GROUP BY ad_id
)
SELECT
    cr.transformation_theme,
    COUNT(*) AS total_ads,
    SUM(a.spend) AS total_spend,
    SUM(a.leads) AS total_leads,
    COALESCE(SUM(ac.customers), 0) AS customers,
    COALESCE(SUM(ac.revenue), 0) AS total_revenue,
    ROUND(COALESCE(SUM(ac.revenue), 0) / NULLIF(SUM(a.spend), 0), 2) AS roas,
    ROUND(SUM(a.spend) / NULLIF(SUM(a.leads), 0), 2) AS cost_per_lead,
    ROUND(SUM(a.spend) / NULLIF(SUM(ac.customers), 0), 2) AS cost_per_acquisition,
    ROUND(100.0 * SUM(a.leads) / NULLIF(SUM(a.clicks), 0), 2) AS click_to_lead_rate,
    ROUND(100.0 * COALESCE(SUM(ac.customers), 0) / NULLIF(SUM(a.leads), 0), 2) AS lead_to_customer_rate
FROM meta_ads a
JOIN meta_ad_creatives cr ON cr.ad_id = a.ad_id
LEFT JOIN ad_contacts ac ON ac.ad_id = a.ad_id
WHERE a.is_active
GROUP BY cr.transformation_theme;

DROP VIEW IF EXISTS v_symptom_ad_performance;
CREATE VIEW v_symptom_ad_performance AS
WITH ad_contacts AS (
    SELECT ad_id,
           COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS customers,
           COALESCE(SUM(purchase_amount), 0) AS revenue
    FROM contacts WHERE ad_id IS NOT NULL GROUP BY ad_id
)
SELECT
    s.symptom,
    COUNT(*) AS total_ads,
    SUM(a.spend) AS total_spend,
    SUM(a.leads) AS total_leads,
    COALESCE(SUM(ac.customers), 0) AS customers,
    COALESCE(SUM(ac.revenue), 0) AS total_revenue,
    ROUND(COALESCE(SUM(ac.revenue), 0) / NULLIF(SUM(a.spend), 0), 2) AS roas,
    ROUND(AVG(a.ctr), 2) AS avg_ctr,
    ROUND(AVG(a.cpc), 2) AS avg_cpc,
    ROUND(100.0 * SUM(a.leads) / NULLIF(SUM(a.clicks), 0), 2) AS click_to_lead_rate
FROM meta_ads a
JOIN meta_ad_creatives cr ON cr.ad_id = a.ad_id
CROSS JOIN LATERAL unnest(cr.symptom_focus) AS s(symptom)
LEFT JOIN ad_contacts ac ON ac.ad_id = a.ad_id
WHERE a.is_active
GROUP BY s.symptom;

-- Top 20 active ads by ROAS among those with spend > 100.
DROP VIEW IF EXISTS v_top_performing_ads;
CREATE VIEW v_top_performing_ads AS
WITH ad_contacts AS (
    SELECT ad_id,
           COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS customers,
           COALESCE(SUM(purchase_amount), 0) AS revenue
    FROM contacts WHERE ad_id IS NOT NULL GROUP BY ad_id
)
SELECT
    a.ad_id, a.ad_name, cr.transformation_theme, cr.symptom_focus, cr.primary_text, cr.headline,
    a.spend, a.leads, a.cost_per_lead,
    COALESCE(ac.customers, 0) AS customers,
    COALESCE(ac.revenue, 0) AS revenue,
    ROUND(COALESCE(ac.revenue, 0) / NULLIF(a.spend, 0), 2) AS roas,
    a.ctr, a.cpc, a.frequency, cr.video_id, cr.thumbnail_url, cr.preview_url
FROM meta_ads a
JOIN meta_ad_creatives cr ON cr.ad_id = a.ad_id
LEFT JOIN ad_contacts ac ON ac.ad_id = a.ad_id
WHERE a.is_active AND a.spend > 100
ORDER BY roas DESC NULLS LAST, a.ad_id
LIMIT 20;

DROP VIEW IF EXISTS v_creative_format_performance;
CREATE VIEW v_creative_format_performance AS
WITH ad_contacts AS (
    SELECT ad_id,
           COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) AS customers,
           COALESCE(SUM(purchase_amount), 0) AS revenue
    FROM contacts WHERE ad_id IS NOT NULL GROUP BY ad_id
)
SELECT
    COALESCE(cr.media_type, CASE WHEN cr.video_id IS NOT NULL THEN 'video' ELSE 'image' END) AS media_type,
    cr.copy_length,
    COUNT(*) AS total_ads,
    SUM(a.spend) AS total_spend,
    SUM(a.leads) AS total_leads,
    COALESCE(SUM(ac.customers), 0) AS customers,
    COALESCE(SUM(ac.revenue), 0) AS total_revenue,
    ROUND(COALESCE(SUM(ac.revenue), 0) / NULLIF(SUM(a.spend), 0), 2) AS roas,
    ROUND(AVG(a.ctr), 2) AS avg_ctr,
    ROUND(AVG(a.cpc), 2) AS avg_cpc,
    ROUND(AVG(a.cost_per_lead), 2) AS avg_cost_per_lead
FROM meta_ads a
JOIN meta_ad_creatives cr ON cr.ad_id = a.ad_id
LEFT JOIN ad_contacts ac ON ac.ad_id = a.ad_id
WHERE a.is_active
GROUP BY 1, cr.copy_length;

-- Per snapshot date over the last 90 days (each snapshot holds Meta's rolling 7-day totals).
DROP VIEW IF EXISTS v_daily_ad_spend;
CREATE VIEW v_daily_ad_spend AS
SELECT
    snapshot_date,
    COUNT(DISTINCT ad_id) AS active_ads,
    SUM(spend) AS total_spend,
    SUM(impressions) AS total_impressions,
    SUM(clicks) AS total_clicks,
    SUM(leads) AS total_leads,
    ROUND(AVG(ctr), 2) AS avg_ctr,
    ROUND(AVG(cpc), 2) AS avg_cpc
FROM meta_ad_insights
WHERE snapshot_date >= CURRENT_DATE - 90
GROUP BY snapshot_date;

-- ---------------------------------------------------------------------------------------------------------
-- Historical analysis views (hist_* tables only; suspicious rows and refunds excluded)
-- ---------------------------------------------------------------------------------------------------------

DROP VIEW IF EXISTS v_funnel_summary;
CREATE VIEW v_funnel_summary AS
SELECT
    COUNT(*) AS total_contacts,
    COUNT(*) FILTER (WHERE reached_stage IN ('qualified', 'booked', 'attended', 'purchased')) AS qualified_count,
    COUNT(*) FILTER (WHERE reached_stage IN ('booked', 'attended', 'purchased')) AS booked_count,
    COUNT(*) FILTER (WHERE reached_stage IN ('attended', 'purchased')) AS attended_count,
    COUNT(*) FILTER (WHERE has_purchase) AS purchased_count,
    ROUND(100.0 * COUNT(*) FILTER (WHERE reached_stage IN ('qualified', 'booked', 'attended', 'purchased')) / NULLIF(COUNT(*), 0), 2) AS qualified_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE reached_stage IN ('booked', 'attended', 'purchased')) / NULLIF(COUNT(*), 0), 2) AS booked_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE reached_stage IN ('attended', 'purchased')) / NULLIF(COUNT(*), 0), 2) AS attended_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE has_purchase) / NULLIF(COUNT(*), 0), 2) AS purchase_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE reached_stage IN ('booked', 'attended', 'purchased'))
          / NULLIF(COUNT(*) FILTER (WHERE reached_stage IN ('qualified', 'booked', 'attended', 'purchased')), 0), 2) AS qualified_to_booked_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE reached_stage IN ('attended', 'purchased'))
          / NULLIF(COUNT(*) FILTER (WHERE reached_stage IN ('booked', 'attended', 'purchased')), 0), 2) AS booked_to_attended_rate,
    ROUND(100.0 * COUNT(*) FILTER (WHERE has_purchase)
          / NULLIF(COUNT(*) FILTER (WHERE reached_stage IN ('attended', 'purchased')), 0), 2) AS attended_to_purchase_rate
FROM hist_contacts
WHERE NOT is_suspicious;

-- Revenue by paid/organic x trigger word (payments joined by email).
DROP VIEW IF EXISTS v_revenue_attribution;
CREATE VIEW v_revenue_attribution AS
WITH pay AS (
    SELECT email, COUNT(*) AS payments, SUM(amount) AS revenue
    FROM hist_payments
    WHERE payment_type IS DISTINCT FROM 'refund'
    GROUP BY email
)
SELECT
    c.ad_type,
    c.trigger_word,
    COUNT(*) AS contact_count,
    COUNT(*) FILTER (WHERE c.has_purchase) AS purchaser_count,
    ROUND(100.0 * COUNT(*) FILTER (WHERE c.has_purchase) / NULLIF(COUNT(*), 0), 2) AS conversion_rate,
    COALESCE(SUM(p.payments), 0) AS total_payments,
    COALESCE(SUM(p.revenue), 0) AS total_revenue,
    ROUND(COALESCE(SUM(p.revenue), 0) / NULLIF(COUNT(*) FILTER (WHERE c.has_purchase), 0), 2) AS avg_order_value,
    ROUND(COALESCE(SUM(p.revenue), 0) / NULLIF(COUNT(*), 0), 2) AS revenue_per_lead
FROM hist_contacts c
LEFT JOIN pay p ON p.email = c.email
WHERE NOT c.is_suspicious
GROUP BY c.ad_type, c.trigger_word;

-- Monthly cohorts by first_seen.
DROP VIEW IF EXISTS v_conversion_over_time;
CREATE VIEW v_conversion_over_time AS
WITH pay AS (
    SELECT email, SUM(amount) AS revenue
    FROM hist_payments
    WHERE payment_type IS DISTINCT FROM 'refund'
    GROUP BY email
)
SELECT
    date_trunc('month', c.first_seen) AS month,
    COUNT(*) AS contacts_created,
    COUNT(*) FILTER (WHERE c.has_purchase) AS contacts_purchased,
    ROUND(100.0 * COUNT(*) FILTER (WHERE c.has_purchase) / NULLIF(COUNT(*), 0), 2) AS conversion_rate,
    COALESCE(SUM(p.revenue), 0) AS revenue,
    ROUND(COALESCE(SUM(p.revenue), 0) / NULLIF(COUNT(*), 0), 2) AS revenue_per_contact
FROM hist_contacts c
LEFT JOIN pay p ON p.email = c.email
WHERE NOT c.is_suspicious AND c.first_seen IS NOT NULL
GROUP BY date_trunc('month', c.first_seen);

-- One row per purchaser: time from first contact to purchase.
DROP VIEW IF EXISTS v_time_to_purchase;
CREATE VIEW v_time_to_purchase AS
SELECT
    email, first_name, last_name, ad_type, trigger_word, first_seen, purchase_date,
    ROUND((EXTRACT(EPOCH FROM purchase_date - first_seen) / 86400)::numeric, 1) AS days_to_purchase,
    ROUND((EXTRACT(EPOCH FROM purchase_date - first_seen) / 3600)::numeric, 1) AS hours_to_purchase
FROM hist_contacts
WHERE has_purchase AND NOT is_suspicious
  AND first_seen IS NOT NULL AND purchase_date IS NOT NULL AND purchase_date >= first_seen;

DROP VIEW IF EXISTS v_time_to_purchase_summary;
CREATE VIEW v_time_to_purchase_summary AS
WITH d AS (
    SELECT EXTRACT(EPOCH FROM purchase_date - first_seen) / 86400 AS days
    FROM hist_contacts
    WHERE has_purchase AND NOT is_suspicious
      AND first_seen IS NOT NULL AND purchase_date IS NOT NULL AND purchase_date >= first_seen
)
SELECT
    COUNT(*) AS total_purchases,
    ROUND(MIN(days)::numeric, 1) AS min_days,
    ROUND(MAX(days)::numeric, 1) AS max_days,
    ROUND(AVG(days)::numeric, 1) AS avg_days,
    ROUND((percentile_cont(0.5) WITHIN GROUP (ORDER BY days))::numeric, 1) AS median_days,
    ROUND((percentile_cont(0.25) WITHIN GROUP (ORDER BY days))::numeric, 1) AS p25_days,
    ROUND((percentile_cont(0.75) WITHIN GROUP (ORDER BY days))::numeric, 1) AS p75_days
FROM d;

DROP VIEW IF EXISTS v_payment_breakdown;
CREATE VIEW v_payment_breakdown AS
SELECT
    source,
    payment_type,
    COUNT(*) AS payment_count,
    COUNT(DISTINCT email) AS unique_customers,
    SUM(amount) AS total_revenue,
    ROUND(AVG(amount), 2) AS avg_payment,
    MIN(amount) AS min_payment,
    MAX(amount) AS max_payment
FROM hist_payments
WHERE NOT is_suspicious AND payment_type IS DISTINCT FROM 'refund'
GROUP BY source, payment_type;

-- Field completeness of hist_contacts (one row).
DROP VIEW IF EXISTS v_data_quality_report;
CREATE VIEW v_data_quality_report AS
SELECT
    COUNT(*) AS total_contacts,
    COUNT(first_name) AS has_first_name,
    COUNT(last_name) AS has_last_name,
    COUNT(phone) AS has_phone,
    COUNT(ad_type) AS has_ad_type,
    COUNT(trigger_word) AS has_trigger_word,
    COUNT(first_seen) AS has_first_seen,
    COUNT(purchase_date) AS has_purchase_date,
    ROUND(100.0 * COUNT(first_name) / NULLIF(COUNT(*), 0), 1) AS first_name_pct,
    ROUND(100.0 * COUNT(last_name) / NULLIF(COUNT(*), 0), 1) AS last_name_pct,
    ROUND(100.0 * COUNT(phone) / NULLIF(COUNT(*), 0), 1) AS phone_pct,
    ROUND(100.0 * COUNT(ad_type) / NULLIF(COUNT(*), 0), 1) AS ad_type_pct,
    ROUND(100.0 * COUNT(trigger_word) / NULLIF(COUNT(*), 0), 1) AS trigger_word_pct,
    ROUND(100.0 * COUNT(first_seen) / NULLIF(COUNT(*), 0), 1) AS first_seen_pct,
    ROUND(100.0 * COUNT(purchase_date) / NULLIF(COUNT(*), 0), 1) AS purchase_date_pct,
    COUNT(*) FILTER (WHERE is_suspicious) AS suspicious_count,
    ROUND(100.0 * COUNT(*) FILTER (WHERE is_suspicious) / NULLIF(COUNT(*), 0), 1) AS suspicious_pct
FROM hist_contacts;

-- Trigger words with at least 5 contacts.
DROP VIEW IF EXISTS v_top_trigger_words;
CREATE VIEW v_top_trigger_words AS
WITH pay AS (
    SELECT email, SUM(amount) AS revenue
    FROM hist_payments
    WHERE payment_type IS DISTINCT FROM 'refund'
    GROUP BY email
)
SELECT
    c.trigger_word,
    COUNT(*) AS contact_count,
    COUNT(*) FILTER (WHERE c.has_purchase) AS purchase_count,
    ROUND(100.0 * COUNT(*) FILTER (WHERE c.has_purchase) / NULLIF(COUNT(*), 0), 2) AS conversion_rate,
    COALESCE(SUM(p.revenue), 0) AS total_revenue,
    ROUND(COALESCE(SUM(p.revenue), 0) / NULLIF(COUNT(*), 0), 2) AS revenue_per_contact
FROM hist_contacts c
LEFT JOIN pay p ON p.email = c.email
WHERE c.trigger_word IS NOT NULL AND NOT c.is_suspicious
GROUP BY c.trigger_word
HAVING COUNT(*) >= 5;

DROP VIEW IF EXISTS v_paid_vs_organic;
CREATE VIEW v_paid_vs_organic AS
WITH pay AS (
    SELECT email, SUM(amount) AS revenue
    FROM hist_payments
    WHERE payment_type IS DISTINCT FROM 'refund'
    GROUP BY email
)
SELECT
    c.ad_type,
    COUNT(*) AS contact_count,
    COUNT(*) FILTER (WHERE c.has_purchase) AS purchase_count,
    ROUND(100.0 * COUNT(*) FILTER (WHERE c.has_purchase) / NULLIF(COUNT(*), 0), 2) AS conversion_rate,
    COALESCE(SUM(p.revenue), 0) AS total_revenue,
    ROUND(COALESCE(SUM(p.revenue), 0) / NULLIF(COUNT(*) FILTER (WHERE c.has_purchase), 0), 2) AS avg_order_value,
    ROUND(COALESCE(SUM(p.revenue), 0) / NULLIF(COUNT(*), 0), 2) AS revenue_per_lead
FROM hist_contacts c
LEFT JOIN pay p ON p.email = c.email
WHERE c.ad_type IN ('paid', 'organic') AND NOT c.is_suspicious
GROUP BY c.ad_type;
