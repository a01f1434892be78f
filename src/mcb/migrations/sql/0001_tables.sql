-- Revision 0001: the original single-tenant schema, as the live database had it just before the
-- original's own multi-tenant migration (spec section 1.2). Written to match that database, including
-- its oddities (the foreign key named fk_contact, the duplicate unique index on payments, the superseded
-- meeting_* columns), so that MCB can adopt a live database by shape and migrate it forward.

-- meta_ads.id defaults to uuid_generate_v4() as in the original. Where the uuid-ossp extension is not
-- installable (the embedded server ships without contrib), a function of the same name stands in.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'uuid-ossp') THEN
        CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
    ELSIF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'uuid_generate_v4') THEN
        CREATE FUNCTION uuid_generate_v4() RETURNS uuid LANGUAGE sql VOLATILE AS 'SELECT gen_random_uuid()';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$;

CREATE TABLE contacts (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mc_id TEXT UNIQUE,
    ghl_id TEXT UNIQUE,
    ad_id TEXT,
    stripe_customer_id TEXT,
    ig_id BIGINT,
    first_name TEXT,
    last_name TEXT,
    email_primary TEXT,
    email_booking TEXT,
    email_payment TEXT,
    phone TEXT,
    ig TEXT,
    fb TEXT,
    stage TEXT,
    chatbot_ab TEXT,
    misc_ab TEXT,
    trigger_word TEXT,
    q1_question TEXT,
    q2_question TEXT,
    objections TEXT,
    subscribe_date TIMESTAMPTZ,
    subscribed TIMESTAMPTZ,
    followed_date TIMESTAMPTZ,
    dm_qualified_date TIMESTAMPTZ,
    link_send_date TIMESTAMPTZ,
    link_click_date TIMESTAMPTZ,
    ig_last_interaction TIMESTAMPTZ,
    form_submit_date TIMESTAMPTZ,
    meeting_book_date TIMESTAMPTZ,
    meeting_held_date TIMESTAMPTZ,
    appointment_date TIMESTAMPTZ,
    appointment_held_date TIMESTAMPTZ,
    package_sent_date TIMESTAMPTZ,
    checkout_started TIMESTAMPTZ,
    purchase_date TIMESTAMPTZ,
    purchase_amount NUMERIC(10,2) DEFAULT 0,
    feedback_sent_date TIMESTAMPTZ,
    feedback_received_date TIMESTAMPTZ,
    feedback_text TEXT,
    lead_summary TEXT,
    thread_id TEXT,
    source TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_contacts_mc_id ON contacts (mc_id) WHERE mc_id IS NOT NULL;
CREATE INDEX idx_contacts_ghl_id ON contacts (ghl_id) WHERE ghl_id IS NOT NULL;
CREATE INDEX idx_contacts_stripe_customer_id ON contacts (stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;
CREATE INDEX idx_contacts_ig_id ON contacts (ig_id) WHERE ig_id IS NOT NULL;
CREATE INDEX idx_contacts_email_primary ON contacts (email_primary) WHERE email_primary IS NOT NULL;
CREATE INDEX idx_contacts_email_booking ON contacts (email_booking) WHERE email_booking IS NOT NULL;
CREATE INDEX idx_contacts_email_payment ON contacts (email_payment) WHERE email_payment IS NOT NULL;
CREATE INDEX idx_contacts_phone ON contacts (phone) WHERE phone IS NOT NULL;
CREATE INDEX idx_contacts_ad_id ON contacts (ad_id) WHERE ad_id IS NOT NULL;
CREATE INDEX idx_contacts_subscribe_date ON contacts (subscribe_date) WHERE subscribe_date IS NOT NULL;
CREATE INDEX idx_contacts_dm_qualified_date ON contacts (dm_qualified_date) WHERE dm_qualified_date IS NOT NULL;
CREATE INDEX idx_contacts_form_submit_date ON contacts (form_submit_date) WHERE form_submit_date IS NOT NULL;
CREATE INDEX idx_contacts_appointment_date ON contacts (appointment_date) WHERE appointment_date IS NOT NULL;
CREATE INDEX idx_contacts_purchase_date ON contacts (purchase_date) WHERE purchase_date IS NOT NULL;
CREATE INDEX idx_contacts_stage ON contacts (stage);
CREATE INDEX idx_contacts_chatbot_ab ON contacts (chatbot_ab);

CREATE TRIGGER update_contacts_updated_at BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

CREATE TABLE webhook_logs (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    event_type TEXT,
    contact_id UUID,
    mc_id TEXT,
    ghl_id TEXT,
    payload JSONB NOT NULL,
    status TEXT DEFAULT 'received',
    error_message TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    CONSTRAINT fk_contact FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE SET NULL
);

CREATE INDEX idx_webhook_logs_source ON webhook_logs (source);
CREATE INDEX idx_webhook_logs_contact_id ON webhook_logs (contact_id);
CREATE INDEX idx_webhook_logs_mc_id ON webhook_logs (mc_id);
CREATE INDEX idx_webhook_logs_ghl_id ON webhook_logs (ghl_id);
CREATE INDEX idx_webhook_logs_created_at ON webhook_logs (created_at);
CREATE INDEX idx_webhook_logs_status ON webhook_logs (status);

CREATE TABLE payments (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    contact_id UUID REFERENCES contacts (id) ON DELETE SET NULL,
    payment_event_id TEXT NOT NULL UNIQUE,
    payment_source TEXT NOT NULL CHECK (payment_source IN ('stripe', 'denefits')),
    payment_type TEXT NOT NULL CHECK (payment_type IN ('buy_in_full', 'buy_now_pay_later')),
    customer_email TEXT,
    customer_name TEXT,
    customer_phone TEXT,
    amount NUMERIC(10,2) NOT NULL,
    currency TEXT DEFAULT 'usd',
    status TEXT NOT NULL,
    payment_date TIMESTAMPTZ NOT NULL,
    stripe_event_type TEXT,
    stripe_customer_id TEXT,
    stripe_session_id TEXT,
    denefits_contract_id INTEGER,
    denefits_contract_code TEXT,
    denefits_financed_amount NUMERIC(10,2),
    denefits_downpayment NUMERIC(10,2),
    denefits_recurring_amount NUMERIC(10,2),
    denefits_num_payments INTEGER,
    denefits_remaining_payments INTEGER,
    raw_payload JSONB NOT NULL,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE UNIQUE INDEX idx_payments_event_id ON payments (payment_event_id);
CREATE INDEX idx_payments_contact_id ON payments (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX idx_payments_orphans ON payments (customer_email) WHERE contact_id IS NULL;
CREATE INDEX idx_payments_source ON payments (payment_source);
CREATE INDEX idx_payments_type ON payments (payment_type);
CREATE INDEX idx_payments_status ON payments (status);
CREATE INDEX idx_payments_customer_email ON payments (customer_email) WHERE customer_email IS NOT NULL;
CREATE INDEX idx_payments_payment_date ON payments (payment_date);
CREATE INDEX idx_payments_created_at ON payments (created_at);
CREATE INDEX idx_payments_stripe_customer_id ON payments (stripe_customer_id);
CREATE INDEX idx_payments_stripe_session_id ON payments (stripe_session_id);
CREATE INDEX idx_payments_denefits_contract_id ON payments (denefits_contract_id);

CREATE TABLE meta_ads (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    ad_id TEXT UNIQUE NOT NULL,
    ad_name TEXT,
    campaign_id TEXT,
    adset_id TEXT,
    status TEXT,
    effective_status TEXT,
    is_active BOOLEAN DEFAULT true,
    created_time TIMESTAMPTZ,
    updated_time TIMESTAMPTZ,
    date_start DATE,
    date_stop DATE,
    last_synced TIMESTAMPTZ DEFAULT NOW(),
    spend NUMERIC(10,2) DEFAULT 0,
    impressions INTEGER DEFAULT 0,
    clicks INTEGER DEFAULT 0,
    reach INTEGER DEFAULT 0,
    ctr NUMERIC(5,2) DEFAULT 0,
    cpc NUMERIC(5,2) DEFAULT 0,
    frequency NUMERIC(5,2) DEFAULT 0,
    link_clicks INTEGER DEFAULT 0,
    landing_page_views INTEGER DEFAULT 0,
    leads INTEGER DEFAULT 0,
    pixel_leads INTEGER DEFAULT 0,
    video_views INTEGER DEFAULT 0,
    post_engagements INTEGER DEFAULT 0,
    cost_per_lead NUMERIC(10,2),
    cost_per_landing_page_view NUMERIC(10,2),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_meta_ads_ad_id ON meta_ads (ad_id);
CREATE INDEX idx_meta_ads_is_active ON meta_ads (is_active) WHERE is_active = true;
CREATE INDEX idx_meta_ads_campaign_id ON meta_ads (campaign_id);
CREATE INDEX idx_meta_ads_adset_id ON meta_ads (adset_id);

CREATE TRIGGER update_meta_ads_updated_at BEFORE UPDATE ON meta_ads
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

CREATE TABLE meta_ad_creatives (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    ad_id TEXT UNIQUE NOT NULL REFERENCES meta_ads (ad_id) ON DELETE CASCADE,
    primary_text TEXT,
    headline TEXT,
    alternative_copy TEXT,
    video_id TEXT,
    thumbnail_url TEXT,
    preview_url TEXT,
    post_id TEXT,
    transformation_theme TEXT,
    symptom_focus TEXT[],
    copy_length TEXT,
    media_type TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_meta_ad_creatives_theme ON meta_ad_creatives (transformation_theme);
CREATE INDEX idx_meta_ad_creatives_symptoms ON meta_ad_creatives USING GIN (symptom_focus);

CREATE TRIGGER update_meta_ad_creatives_updated_at BEFORE UPDATE ON meta_ad_creatives
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

CREATE TABLE meta_ad_insights (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    ad_id TEXT NOT NULL REFERENCES meta_ads (ad_id) ON DELETE CASCADE,
    snapshot_date DATE NOT NULL,
    spend NUMERIC(10,2),
    impressions INTEGER,
    clicks INTEGER,
    reach INTEGER,
    leads INTEGER,
    ctr NUMERIC(5,2),
    cpc NUMERIC(5,2),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE (ad_id, snapshot_date)
);

CREATE INDEX idx_meta_ad_insights_snapshot_date ON meta_ad_insights (snapshot_date);

-- Reporting memory (global in the original; MCB adds tenant_id).
CREATE TABLE weekly_snapshots (
    week_ending DATE PRIMARY KEY,
    total_contacts INTEGER,
    qualified INTEGER,
    qualify_rate NUMERIC(5,2),
    bookings INTEGER,
    shows INTEGER,
    purchases INTEGER,
    revenue NUMERIC(12,2),
    spend NUMERIC(12,2),
    roas NUMERIC(8,2),
    top_ad_by_volume TEXT,
    top_ad_by_quality TEXT,
    top_ad_by_roas TEXT,
    recommendations_given TEXT[],
    actions_taken TEXT[],
    insights TEXT,
    report_sent_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE ab_tests (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    hypothesis TEXT,
    variant_a_description TEXT,
    variant_b_description TEXT,
    variant_a_ad_ids TEXT[],
    variant_b_ad_ids TEXT[],
    metric_tracked TEXT,
    target_sample_size INTEGER,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    status TEXT DEFAULT 'planning' CHECK (status IN ('planning', 'running', 'complete', 'cancelled')),
    winner TEXT CHECK (winner IN ('variant_a', 'variant_b', 'no_difference')),
    results JSONB,
    confidence_level NUMERIC(5,2),
    result_summary TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE ad_performance_weekly (
    week_ending DATE NOT NULL,
    ad_id TEXT NOT NULL,
    contacts INTEGER,
    qualified INTEGER,
    qualify_rate NUMERIC(5,2),
    bookings INTEGER,
    booking_rate NUMERIC(5,2),
    shows INTEGER,
    show_rate NUMERIC(5,2),
    purchases INTEGER,
    revenue NUMERIC(12,2),
    spend NUMERIC(12,2),
    roas NUMERIC(8,2),
    cost_per_lead NUMERIC(10,2),
    cost_per_customer NUMERIC(10,2),
    transformation_theme TEXT,
    symptom_focus TEXT[],
    is_new BOOLEAN DEFAULT false,
    was_scaled BOOLEAN DEFAULT false,
    was_paused BOOLEAN DEFAULT false,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    PRIMARY KEY (week_ending, ad_id)
);

CREATE TABLE theme_performance_weekly (
    week_ending DATE NOT NULL,
    transformation_theme TEXT NOT NULL,
    ad_count INTEGER,
    contacts INTEGER,
    qualified INTEGER,
    purchases INTEGER,
    revenue NUMERIC(12,2),
    spend NUMERIC(12,2),
    roas NUMERIC(8,2),
    contacts_wow_change NUMERIC(8,2),
    revenue_wow_change NUMERIC(8,2),
    roas_wow_change NUMERIC(8,2),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    PRIMARY KEY (week_ending, transformation_theme)
);

CREATE TABLE reports_sent (
    id SERIAL PRIMARY KEY,
    week_ending DATE,
    sent_to TEXT[],
    subject TEXT,
    sections TEXT[],
    top_recommendation TEXT,
    primary_insight TEXT,
    sent_at TIMESTAMPTZ DEFAULT NOW(),
    opened_at TIMESTAMPTZ,
    clicked_at TIMESTAMPTZ,
    report_html TEXT,
    report_markdown TEXT
);

-- Historical analysis schema (analysis only, never joined to live tables in the original).
CREATE TABLE hist_contacts (
    email TEXT PRIMARY KEY,
    first_name TEXT,
    last_name TEXT,
    phone TEXT,
    source TEXT,
    import_batch_id TEXT,
    ad_type TEXT CHECK (ad_type IN ('paid', 'organic')),
    trigger_word TEXT,
    campaign_name TEXT,
    reached_stage TEXT CHECK (reached_stage IN ('contacted', 'qualified', 'booked', 'attended', 'purchased')),
    has_purchase BOOLEAN DEFAULT false,
    first_seen TIMESTAMPTZ,
    last_seen TIMESTAMPTZ,
    purchase_date TIMESTAMPTZ,
    data_quality_notes TEXT,
    is_suspicious BOOLEAN DEFAULT false,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE hist_payments (
    id BIGSERIAL PRIMARY KEY,
    email TEXT,
    amount NUMERIC(10,2),
    currency TEXT DEFAULT 'usd',
    payment_date TIMESTAMPTZ,
    source TEXT CHECK (source IN ('stripe', 'denefits')),
    external_id TEXT,
    payment_type TEXT,
    import_batch_id TEXT,
    is_suspicious BOOLEAN DEFAULT false,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_hist_payments_email ON hist_payments (email);

CREATE TABLE hist_timeline (
    id BIGSERIAL PRIMARY KEY,
    email TEXT,
    event_type TEXT,
    event_date TIMESTAMPTZ,
    source TEXT,
    event_details JSONB,
    import_batch_id TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_hist_timeline_email ON hist_timeline (email);

CREATE TABLE hist_import_logs (
    id BIGSERIAL PRIMARY KEY,
    source_file TEXT,
    source_type TEXT,
    rows_processed INTEGER,
    rows_imported INTEGER,
    rows_skipped INTEGER,
    rows_updated INTEGER,
    errors JSONB,
    warnings JSONB,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    imported_by TEXT,
    notes TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW()
);
