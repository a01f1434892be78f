-- Revision 0007: tenant-aware versions of the original's global SQL functions (spec R-05, 2.9).
--
-- Runs after every table has tenant_id uuid NOT NULL, the unique keys are per tenant
-- ((tenant_id, mc_id), (tenant_id, ghl_id) on contacts, (tenant_id, payment_event_id) on payments,
-- (tenant_id, ad_id) on meta_ads) and mcb_default_tenant_id() exists.
--
-- Part 1 adds, for every function, an overload whose first parameter is p_tenant_id uuid and which reads
-- and writes only that tenant's rows. Part 2 redefines the original signatures (same names, parameter
-- names, defaults and return types) as thin wrappers that call the overload with mcb_default_tenant_id(),
-- so the still-running legacy application keeps working and only ever touches the default tenant.
--
-- Overload resolution stays unambiguous for legacy calls: every overload takes exactly one more argument
-- than the original, and only find_contact_smart (all-text parameters, where PostgreSQL prefers the text
-- candidate for untyped literals) keeps parameter defaults on its tenant overload.
--
-- The report functions are PL/pgSQL so that they bind to the tenant-aware views (0007_tenant_views.sql,
-- which runs after this file) when first called. 0007_tenant_functions_down.sql drops the overloads.

-- =========================================================================================================
-- Part 1: tenant-scoped overloads
-- =========================================================================================================

CREATE OR REPLACE FUNCTION find_contact_by_email(p_tenant_id uuid, search_email text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT id FROM contacts
    WHERE tenant_id = p_tenant_id
      AND (email_primary ILIKE search_email OR email_booking ILIKE search_email OR email_payment ILIKE search_email)
    LIMIT 1
$$;

CREATE OR REPLACE FUNCTION find_contact_by_mc_id(p_tenant_id uuid, search_mc_id text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT id FROM contacts WHERE tenant_id = p_tenant_id AND mc_id = search_mc_id LIMIT 1
$$;

CREATE OR REPLACE FUNCTION find_contact_by_ghl_id(p_tenant_id uuid, search_ghl_id text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT id FROM contacts WHERE tenant_id = p_tenant_id AND ghl_id = search_ghl_id LIMIT 1
$$;

CREATE OR REPLACE FUNCTION find_contact_by_phone(p_tenant_id uuid, search_phone text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT id FROM contacts
    WHERE tenant_id = p_tenant_id
      AND regexp_replace(phone, '[^0-9]', '', 'g') = regexp_replace(search_phone, '[^0-9]', '', 'g')
    LIMIT 1
$$;

CREATE OR REPLACE FUNCTION find_contact_smart(
    p_tenant_id uuid,
    search_ghl_id text DEFAULT NULL,
    search_mc_id text DEFAULT NULL,
    search_email text DEFAULT NULL,
    search_phone text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    result uuid;
BEGIN
    IF search_ghl_id IS NOT NULL THEN
        SELECT c.id INTO result FROM contacts c
        WHERE c.tenant_id = p_tenant_id AND c.ghl_id = search_ghl_id LIMIT 1;
        IF result IS NOT NULL THEN RETURN result; END IF;
    END IF;
    IF search_mc_id IS NOT NULL THEN
        SELECT c.id INTO result FROM contacts c
        WHERE c.tenant_id = p_tenant_id AND c.mc_id = search_mc_id LIMIT 1;
        IF result IS NOT NULL THEN RETURN result; END IF;
    END IF;
    IF search_email IS NOT NULL THEN
        SELECT c.id INTO result FROM contacts c
        WHERE c.tenant_id = p_tenant_id
          AND (c.email_primary ILIKE search_email OR c.email_booking ILIKE search_email
               OR c.email_payment ILIKE search_email)
        LIMIT 1;
        IF result IS NOT NULL THEN RETURN result; END IF;
    END IF;
    IF search_phone IS NOT NULL THEN
        SELECT c.id INTO result FROM contacts c
        WHERE c.tenant_id = p_tenant_id AND c.phone = search_phone LIMIT 1;
        IF result IS NOT NULL THEN RETURN result; END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION create_contact_with_mc_id(
    p_tenant_id uuid, p_mc_id text, p_subscribe_date timestamptz, p_stage text
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    result_id uuid;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'create_contact_with_mc_id: tenant id is required';
    END IF;
    INSERT INTO contacts AS c (tenant_id, mc_id, subscribe_date, stage, created_at, updated_at)
    VALUES (p_tenant_id, p_mc_id, p_subscribe_date, p_stage, now(), now())
    ON CONFLICT (tenant_id, mc_id) DO UPDATE SET
        subscribe_date = CASE
            WHEN c.subscribe_date IS NULL OR c.subscribe_date > EXCLUDED.subscribe_date
            THEN EXCLUDED.subscribe_date ELSE c.subscribe_date END,
        stage = COALESCE(c.stage, EXCLUDED.stage),
        updated_at = now()
    RETURNING c.id INTO result_id;
    RETURN result_id;
END;
$$;

-- Only updates the contact if it belongs to the tenant.
CREATE OR REPLACE FUNCTION update_contact_dynamic(p_tenant_id uuid, p_contact_id uuid, p_update_data jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d jsonb := COALESCE(p_update_data, '{}'::jsonb);
BEGIN
    UPDATE contacts SET
        mc_id = COALESCE(d->>'mc_id', mc_id),
        ghl_id = COALESCE(d->>'ghl_id', ghl_id),
        ad_id = COALESCE(d->>'ad_id', ad_id),
        stripe_customer_id = COALESCE(d->>'stripe_customer_id', stripe_customer_id),
        ig_id = COALESCE((d->>'ig_id')::bigint, ig_id),
        first_name = COALESCE(d->>'first_name', first_name),
        last_name = COALESCE(d->>'last_name', last_name),
        email_primary = COALESCE(d->>'email_primary', email_primary),
        email_booking = COALESCE(d->>'email_booking', email_booking),
        email_payment = COALESCE(d->>'email_payment', email_payment),
        phone = COALESCE(d->>'phone', phone),
        ig = COALESCE(d->>'ig', ig),
        fb = COALESCE(d->>'fb', fb),
        stage = COALESCE(d->>'stage', stage),
        chatbot_ab = COALESCE(d->>'chatbot_ab', chatbot_ab),
        misc_ab = COALESCE(d->>'misc_ab', misc_ab),
        trigger_word = COALESCE(d->>'trigger_word', trigger_word),
        q1_question = COALESCE(d->>'q1_question', q1_question),
        q2_question = COALESCE(d->>'q2_question', q2_question),
        objections = COALESCE(d->>'objections', objections),
        subscribe_date = COALESCE((d->>'subscribe_date')::timestamptz, subscribe_date),
        subscribed = COALESCE((d->>'subscribed')::timestamptz, subscribed),
        followed_date = COALESCE((d->>'followed_date')::timestamptz, followed_date),
        dm_qualified_date = COALESCE((d->>'dm_qualified_date')::timestamptz, dm_qualified_date),
        link_send_date = COALESCE((d->>'link_send_date')::timestamptz, link_send_date),
        link_click_date = COALESCE((d->>'link_click_date')::timestamptz, link_click_date),
        ig_last_interaction = COALESCE((d->>'ig_last_interaction')::timestamptz, ig_last_interaction),
        form_submit_date = COALESCE((d->>'form_submit_date')::timestamptz, form_submit_date),
        meeting_book_date = COALESCE((d->>'meeting_book_date')::timestamptz, meeting_book_date),
        meeting_held_date = COALESCE((d->>'meeting_held_date')::timestamptz, meeting_held_date),
        appointment_date = COALESCE((d->>'appointment_date')::timestamptz, appointment_date),
        appointment_held_date = COALESCE((d->>'appointment_held_date')::timestamptz, appointment_held_date),
        package_sent_date = COALESCE((d->>'package_sent_date')::timestamptz, package_sent_date),
        checkout_started = COALESCE((d->>'checkout_started')::timestamptz, checkout_started),
        purchase_date = COALESCE((d->>'purchase_date')::timestamptz, purchase_date),
        purchase_amount = COALESCE((d->>'purchase_amount')::numeric(10,2), purchase_amount),
        feedback_sent_date = COALESCE((d->>'feedback_sent_date')::timestamptz, feedback_sent_date),
        feedback_received_date = COALESCE((d->>'feedback_received_date')::timestamptz, feedback_received_date),
        feedback_text = COALESCE(d->>'feedback_text', feedback_text),
        lead_summary = COALESCE(d->>'lead_summary', lead_summary),
        thread_id = COALESCE(d->>'thread_id', thread_id),
        source = COALESCE(d->>'source', source),
        updated_at = now()
    WHERE id = p_contact_id AND tenant_id = p_tenant_id;
END;
$$;

CREATE OR REPLACE FUNCTION link_orphan_payments(p_tenant_id uuid, p_email text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    target uuid;
    linked integer;
BEGIN
    SELECT c.id INTO target FROM contacts c
    WHERE c.tenant_id = p_tenant_id
      AND (c.email_primary ILIKE p_email OR c.email_booking ILIKE p_email OR c.email_payment ILIKE p_email)
    LIMIT 1;
    IF target IS NULL THEN
        RETURN 0;
    END IF;

    UPDATE payments SET contact_id = target, updated_at = now()
    WHERE tenant_id = p_tenant_id AND customer_email ILIKE p_email AND contact_id IS NULL;
    GET DIAGNOSTICS linked = ROW_COUNT;

    UPDATE contacts SET purchase_amount = (
        SELECT COALESCE(SUM(p.amount), 0) FROM payments p
        WHERE p.tenant_id = p_tenant_id AND p.contact_id = target AND p.status IN ('paid', 'active')
    )
    WHERE id = target AND tenant_id = p_tenant_id;
    RETURN linked;
END;
$$;

CREATE OR REPLACE FUNCTION get_attribution_stats(p_tenant_id uuid)
RETURNS TABLE (
    total_payments bigint,
    total_revenue numeric,
    attributed_payments bigint,
    attributed_revenue numeric,
    orphan_payments bigint,
    orphan_revenue numeric,
    attribution_percentage numeric,
    stripe_payments bigint,
    stripe_revenue numeric,
    denefits_payments bigint,
    denefits_revenue numeric
)
LANGUAGE sql STABLE AS $$
    SELECT
        COUNT(*),
        COALESCE(SUM(amount), 0),
        COUNT(*) FILTER (WHERE contact_id IS NOT NULL),
        COALESCE(SUM(amount) FILTER (WHERE contact_id IS NOT NULL), 0),
        COUNT(*) FILTER (WHERE contact_id IS NULL),
        COALESCE(SUM(amount) FILTER (WHERE contact_id IS NULL), 0),
        COALESCE(ROUND(100.0 * COUNT(*) FILTER (WHERE contact_id IS NOT NULL) / NULLIF(COUNT(*), 0), 2), 0),
        COUNT(*) FILTER (WHERE payment_source = 'stripe'),
        COALESCE(SUM(amount) FILTER (WHERE payment_source = 'stripe'), 0),
        COUNT(*) FILTER (WHERE payment_source = 'denefits'),
        COALESCE(SUM(amount) FILTER (WHERE payment_source = 'denefits'), 0)
    FROM payments
    WHERE tenant_id = p_tenant_id AND status IN ('paid', 'active')
$$;

CREATE OR REPLACE FUNCTION fn_get_weekly_report(p_tenant_id uuid, start_date timestamptz, end_date timestamptz)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'period', json_build_object('start_date', start_date, 'end_date', end_date),
        'weekly_performance', (SELECT json_agg(t ORDER BY t.week_start DESC) FROM v_weekly_performance t
                               WHERE t.tenant_id = p_tenant_id AND t.week_start BETWEEN start_date AND end_date),
        'funnel_metrics', (SELECT json_agg(t) FROM (SELECT * FROM v_funnel_metrics f
                           WHERE f.tenant_id = p_tenant_id LIMIT 20) t),
        'revenue_breakdown', (SELECT json_agg(t ORDER BY t.week_start DESC) FROM v_revenue_breakdown t
                              WHERE t.tenant_id = p_tenant_id AND t.week_start BETWEEN start_date AND end_date),
        'timing_analysis', (SELECT json_agg(t ORDER BY t.week_start DESC) FROM v_timing_analysis t
                            WHERE t.tenant_id = p_tenant_id AND t.week_start BETWEEN start_date AND end_date),
        'attribution_summary', (SELECT json_agg(t) FROM (SELECT * FROM v_attribution_summary a
                                WHERE a.tenant_id = p_tenant_id ORDER BY a.total_revenue DESC LIMIT 20) t),
        'symptom_performance', (SELECT json_agg(t) FROM (SELECT * FROM v_symptom_performance s
                                WHERE s.tenant_id = p_tenant_id ORDER BY s.intent_score DESC NULLS LAST LIMIT 15) t),
        'data_quality', (SELECT row_to_json(t) FROM v_data_quality t WHERE t.tenant_id = p_tenant_id),
        'summary', json_build_object(
            'total_contacts', (SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = p_tenant_id
                               AND c.subscribe_date BETWEEN start_date AND end_date),
            'total_revenue', (SELECT COALESCE(SUM(p.amount), 0) FROM payments p WHERE p.tenant_id = p_tenant_id
                              AND p.payment_date BETWEEN start_date AND end_date
                              AND p.status IN ('paid', 'active') AND p.payment_type <> 'refund'),
            'total_customers', (SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = p_tenant_id
                                AND c.purchase_date BETWEEN start_date AND end_date),
            'avg_order_value', (SELECT ROUND(AVG(p.amount), 2) FROM payments p WHERE p.tenant_id = p_tenant_id
                                AND p.payment_date BETWEEN start_date AND end_date
                                AND p.status IN ('paid', 'active') AND p.payment_type <> 'refund')
        )
    );
END;
$$;

CREATE OR REPLACE FUNCTION fn_calculate_mom_growth(p_tenant_id uuid)
RETURNS TABLE (
    metric_name text,
    current_month numeric,
    previous_month numeric,
    absolute_change numeric,
    percent_change numeric
)
LANGUAGE sql STABLE AS $$
    WITH m AS (
        SELECT
            date_trunc('month', subscribe_date) = date_trunc('month', now()) AS is_current,
            COUNT(*)::numeric AS contacts,
            (COUNT(*) FILTER (WHERE purchase_date IS NOT NULL))::numeric AS customers,
            COALESCE(SUM(purchase_amount) FILTER (WHERE purchase_date IS NOT NULL), 0) AS revenue,
            ROUND(AVG(purchase_amount) FILTER (WHERE purchase_date IS NOT NULL), 2) AS aov
        FROM contacts
        WHERE tenant_id = p_tenant_id
          AND subscribe_date >= date_trunc('month', now()) - interval '1 month'
          AND subscribe_date < date_trunc('month', now()) + interval '1 month'
        GROUP BY 1
    ),
    cur AS (SELECT * FROM m WHERE is_current),
    prev AS (SELECT * FROM m WHERE NOT is_current),
    pairs AS (
        SELECT k.ord, k.metric, k.c, k.p
        FROM (SELECT 1) one
        LEFT JOIN cur ON true
        LEFT JOIN prev ON true
        CROSS JOIN LATERAL (VALUES
            (1, 'Contacts', COALESCE(cur.contacts, 0), COALESCE(prev.contacts, 0)),
            (2, 'Customers', COALESCE(cur.customers, 0), COALESCE(prev.customers, 0)),
            (3, 'Revenue', COALESCE(cur.revenue, 0), COALESCE(prev.revenue, 0)),
            (4, 'AOV', cur.aov, prev.aov)
        ) AS k(ord, metric, c, p)
    )
    SELECT metric, c, p, c - p, ROUND(100.0 * (c - p) / NULLIF(p, 0), 1)
    FROM pairs ORDER BY ord
$$;

CREATE OR REPLACE FUNCTION fn_get_cohort_analysis(p_tenant_id uuid, p_cohort_month date)
RETURNS TABLE (
    cohort_month date,
    cohort_size bigint,
    contacts_qualified bigint,
    contacts_booked bigint,
    contacts_attended bigint,
    contacts_purchased bigint,
    total_revenue numeric,
    qualification_rate numeric,
    booking_rate numeric,
    show_rate numeric,
    conversion_rate numeric,
    revenue_per_contact numeric,
    avg_days_to_purchase numeric
)
LANGUAGE sql STABLE AS $$
    SELECT
        date_trunc('month', p_cohort_month)::date,
        COUNT(*),
        COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL),
        COUNT(*) FILTER (WHERE appointment_date IS NOT NULL),
        COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL),
        COUNT(*) FILTER (WHERE purchase_date IS NOT NULL),
        COALESCE(SUM(purchase_amount), 0),
        ROUND(100.0 * COUNT(*) FILTER (WHERE dm_qualified_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1),
        ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1),
        ROUND(100.0 * COUNT(*) FILTER (WHERE appointment_held_date IS NOT NULL)
              / NULLIF(COUNT(*) FILTER (WHERE appointment_date IS NOT NULL), 0), 1),
        ROUND(100.0 * COUNT(*) FILTER (WHERE purchase_date IS NOT NULL) / NULLIF(COUNT(*), 0), 1),
        ROUND(COALESCE(SUM(purchase_amount), 0) / NULLIF(COUNT(*), 0), 2),
        ROUND((AVG(EXTRACT(EPOCH FROM (purchase_date - subscribe_date)) / 86400)
              FILTER (WHERE purchase_date IS NOT NULL))::numeric, 1)
    FROM contacts
    WHERE tenant_id = p_tenant_id
      AND subscribe_date >= date_trunc('month', p_cohort_month)
      AND subscribe_date < date_trunc('month', p_cohort_month) + interval '1 month'
$$;

-- No parameter defaults here: with them, a legacy call with untyped literals could not choose between
-- (date, date) and (uuid, date, date).
CREATE OR REPLACE FUNCTION fn_get_ad_performance_summary(p_tenant_id uuid, start_date date, end_date date)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'period', json_build_object('start_date', start_date, 'end_date', end_date),
        'roas_by_theme', (SELECT json_agg(t) FROM v_ad_roas_by_theme t WHERE t.tenant_id = p_tenant_id),
        'symptom_performance', (SELECT json_agg(t) FROM v_symptom_ad_performance t WHERE t.tenant_id = p_tenant_id),
        'top_ads', (SELECT json_agg(t) FROM (SELECT * FROM v_top_performing_ads a
                    WHERE a.tenant_id = p_tenant_id LIMIT 10) t),
        'format_performance', (SELECT json_agg(t) FROM v_creative_format_performance t
                               WHERE t.tenant_id = p_tenant_id),
        'daily_spend', (SELECT json_agg(t ORDER BY t.snapshot_date DESC) FROM v_daily_ad_spend t
                        WHERE t.tenant_id = p_tenant_id AND t.snapshot_date BETWEEN start_date AND end_date),
        'summary', (
            SELECT json_build_object(
                'total_active_ads', COUNT(*),
                'total_spend', COALESCE(SUM(a.spend), 0),
                'total_leads', COALESCE(SUM(a.leads), 0),
                'total_customers', (SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = p_tenant_id
                                    AND c.ad_id IS NOT NULL AND c.purchase_date IS NOT NULL),
                'total_revenue', (SELECT COALESCE(SUM(c.purchase_amount), 0) FROM contacts c
                                  WHERE c.tenant_id = p_tenant_id
                                    AND c.ad_id IS NOT NULL AND c.purchase_date IS NOT NULL),
                'overall_roas', ROUND((SELECT COALESCE(SUM(c.purchase_amount), 0) FROM contacts c
                                       WHERE c.tenant_id = p_tenant_id AND c.purchase_date IS NOT NULL
                                         AND c.ad_id IN (SELECT m.ad_id FROM meta_ads m
                                                         WHERE m.tenant_id = p_tenant_id AND m.is_active))
                                      / NULLIF(SUM(a.spend), 0), 2)
            )
            FROM meta_ads a WHERE a.tenant_id = p_tenant_id AND a.is_active
        )
    );
END;
$$;

CREATE OR REPLACE FUNCTION fn_calculate_wow_changes(p_tenant_id uuid, p_week_ending date)
RETURNS TABLE (
    metric text,
    current_value numeric,
    previous_value numeric,
    change_value numeric,
    change_pct numeric
)
LANGUAGE sql STABLE AS $$
    SELECT k.metric, k.c, k.p, k.c - k.p, ROUND(100.0 * (k.c - k.p) / NULLIF(k.p, 0), 2)
    FROM weekly_snapshots cur
    LEFT JOIN weekly_snapshots prev
           ON prev.tenant_id = cur.tenant_id AND prev.week_ending = cur.week_ending - 7
    CROSS JOIN LATERAL (VALUES
        (1, 'contacts', cur.total_contacts::numeric, prev.total_contacts::numeric),
        (2, 'qualify_rate', cur.qualify_rate::numeric, prev.qualify_rate::numeric),
        (3, 'revenue', cur.revenue::numeric, prev.revenue::numeric),
        (4, 'roas', cur.roas::numeric, prev.roas::numeric)
    ) AS k(ord, metric, c, p)
    WHERE cur.tenant_id = p_tenant_id AND cur.week_ending = p_week_ending
    ORDER BY k.ord
$$;

CREATE OR REPLACE FUNCTION fn_get_report_memory(p_tenant_id uuid, p_week_ending date) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'last_week', (
            SELECT json_build_object(
                'week_ending', s.week_ending, 'total_contacts', s.total_contacts,
                'qualify_rate', s.qualify_rate, 'revenue', s.revenue, 'roas', s.roas,
                'top_ad_by_volume', s.top_ad_by_volume, 'top_ad_by_quality', s.top_ad_by_quality,
                'recommendations_given', s.recommendations_given, 'insights', s.insights)
            FROM weekly_snapshots s
            WHERE s.tenant_id = p_tenant_id AND s.week_ending = p_week_ending - 7
            LIMIT 1
        ),
        'running_ab_tests', (
            SELECT json_agg(json_build_object(
                'name', t.name, 'hypothesis', t.hypothesis,
                'variant_a', t.variant_a_description, 'variant_b', t.variant_b_description,
                'metric', t.metric_tracked, 'started_at', t.started_at,
                'days_running', CURRENT_DATE - t.started_at::date) ORDER BY t.started_at)
            FROM ab_tests t WHERE t.tenant_id = p_tenant_id AND t.status = 'running'
        ),
        'historical_patterns', (
            SELECT json_build_object(
                'avg_qualify_rate_4wk', ROUND(AVG(s.qualify_rate), 2),
                'avg_roas_4wk', ROUND(AVG(s.roas), 2),
                'total_revenue_4wk', SUM(s.revenue),
                'top_theme_4wk', (
                    SELECT tp.transformation_theme FROM theme_performance_weekly tp
                    WHERE tp.tenant_id = p_tenant_id
                      AND tp.week_ending >= p_week_ending - 28 AND tp.week_ending < p_week_ending
                    GROUP BY tp.transformation_theme
                    ORDER BY AVG(tp.roas) DESC NULLS LAST LIMIT 1))
            FROM weekly_snapshots s
            WHERE s.tenant_id = p_tenant_id
              AND s.week_ending >= p_week_ending - 28 AND s.week_ending < p_week_ending
        ),
        'last_3_recommendations', (
            SELECT json_agg(json_build_object(
                'week', r.week_ending, 'recommendations', r.recommendations_given,
                'actions_taken', r.actions_taken) ORDER BY r.week_ending DESC)
            FROM (SELECT s.week_ending, s.recommendations_given, s.actions_taken FROM weekly_snapshots s
                  WHERE s.tenant_id = p_tenant_id AND s.week_ending < p_week_ending
                  ORDER BY s.week_ending DESC LIMIT 3) r
        )
    );
END;
$$;

-- =========================================================================================================
-- Part 2: the original signatures become wrappers bound to the default tenant (legacy application)
-- =========================================================================================================

CREATE OR REPLACE FUNCTION find_contact_by_email(search_email text) RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT find_contact_by_email(mcb_default_tenant_id(), search_email) $$;

CREATE OR REPLACE FUNCTION find_contact_by_mc_id(search_mc_id text) RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT find_contact_by_mc_id(mcb_default_tenant_id(), search_mc_id) $$;

CREATE OR REPLACE FUNCTION find_contact_by_ghl_id(search_ghl_id text) RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT find_contact_by_ghl_id(mcb_default_tenant_id(), search_ghl_id) $$;

CREATE OR REPLACE FUNCTION find_contact_by_phone(search_phone text) RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT find_contact_by_phone(mcb_default_tenant_id(), search_phone) $$;

CREATE OR REPLACE FUNCTION find_contact_smart(
    search_ghl_id text DEFAULT NULL,
    search_mc_id text DEFAULT NULL,
    search_email text DEFAULT NULL,
    search_phone text DEFAULT NULL
) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT find_contact_smart(mcb_default_tenant_id(), search_ghl_id, search_mc_id, search_email, search_phone)
$$;

CREATE OR REPLACE FUNCTION create_contact_with_mc_id(p_mc_id text, p_subscribe_date timestamptz, p_stage text)
RETURNS uuid
LANGUAGE sql AS $$
    SELECT create_contact_with_mc_id(mcb_default_tenant_id(), p_mc_id, p_subscribe_date, p_stage)
$$;

CREATE OR REPLACE FUNCTION update_contact_dynamic(p_contact_id uuid, p_update_data jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT update_contact_dynamic(mcb_default_tenant_id(), p_contact_id, p_update_data) $$;

CREATE OR REPLACE FUNCTION link_orphan_payments(p_email text) RETURNS integer
LANGUAGE sql AS $$ SELECT link_orphan_payments(mcb_default_tenant_id(), p_email) $$;

CREATE OR REPLACE FUNCTION get_attribution_stats()
RETURNS TABLE (
    total_payments bigint,
    total_revenue numeric,
    attributed_payments bigint,
    attributed_revenue numeric,
    orphan_payments bigint,
    orphan_revenue numeric,
    attribution_percentage numeric,
    stripe_payments bigint,
    stripe_revenue numeric,
    denefits_payments bigint,
    denefits_revenue numeric
)
LANGUAGE sql STABLE AS $$ SELECT * FROM get_attribution_stats(mcb_default_tenant_id()) $$;

CREATE OR REPLACE FUNCTION fn_get_weekly_report(start_date timestamptz, end_date timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$ SELECT fn_get_weekly_report(mcb_default_tenant_id(), start_date, end_date) $$;

CREATE OR REPLACE FUNCTION fn_calculate_mom_growth()
RETURNS TABLE (
    metric_name text,
    current_month numeric,
    previous_month numeric,
    absolute_change numeric,
    percent_change numeric
)
LANGUAGE sql STABLE AS $$ SELECT * FROM fn_calculate_mom_growth(mcb_default_tenant_id()) $$;

CREATE OR REPLACE FUNCTION fn_get_cohort_analysis(p_cohort_month date)
RETURNS TABLE (
    cohort_month date,
    cohort_size bigint,
    contacts_qualified bigint,
    contacts_booked bigint,
    contacts_attended bigint,
    contacts_purchased bigint,
    total_revenue numeric,
    qualification_rate numeric,
    booking_rate numeric,
    show_rate numeric,
    conversion_rate numeric,
    revenue_per_contact numeric,
    avg_days_to_purchase numeric
)
LANGUAGE sql STABLE AS $$ SELECT * FROM fn_get_cohort_analysis(mcb_default_tenant_id(), p_cohort_month) $$;

CREATE OR REPLACE FUNCTION fn_get_ad_performance_summary(
    start_date date DEFAULT CURRENT_DATE - 7,
    end_date date DEFAULT CURRENT_DATE
) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT fn_get_ad_performance_summary(mcb_default_tenant_id(), start_date, end_date)
$$;

CREATE OR REPLACE FUNCTION fn_calculate_wow_changes(p_week_ending date)
RETURNS TABLE (
    metric text,
    current_value numeric,
    previous_value numeric,
    change_value numeric,
    change_pct numeric
)
LANGUAGE sql STABLE AS $$ SELECT * FROM fn_calculate_wow_changes(mcb_default_tenant_id(), p_week_ending) $$;

CREATE OR REPLACE FUNCTION fn_get_report_memory(p_week_ending date) RETURNS json
LANGUAGE sql STABLE AS $$ SELECT fn_get_report_memory(mcb_default_tenant_id(), p_week_ending) $$;
