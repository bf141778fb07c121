"""Word lists (lower-case). Compact on purpose: they guard precision, they are no dictionary."""
from __future__ import annotations


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


TITLES = _words("""
mr mrs ms miss mx dr prof professor sir dame madam madame mme mlle lord lady rev reverend fr
capt captain col gen lt sgt officer judge hon president ceo cto cfo coo cmo cio vp svp evp
senator rep gov governor mayor coach nurse""")
GREETINGS = _words("hi hello hey dear thanks thank cheers congrats congratulations bye attn")
# Tag keys (customer:jane-doe) whose value names a person / an organisation.
PERSON_ROLES = _words("""
customer user client contact owner assignee author person employee agent patient member guest
requester reporter recipient""")
ORG_ROLES = _words("company org organization organisation vendor supplier merchant employer brand")
# Generational suffixes: kept in the value, dropped from the key.
NAME_SUFFIXES = _words("jr sr ii iii iv")
PARTICLES = _words("van von de der den da di du del della la le bin ibn al")
# Legal forms are dropped from an organisation's key ("Acme Inc." ~ "Acme Corp" ~ "Acme");
# descriptive words are kept ("Acme Bank" is not "Acme Labs").
ORG_LEGAL = _words("""
inc incorporated ltd limited llc llp plc corp corporation co company gmbh ag sa sas sarl srl
spa bv nv pty oy ab kk lp""")
ORG_WORDS = _words("""
bank university college institute foundation group labs lab technologies technology systems
solutions holdings partners associates ventures capital airlines airways insurance
pharmaceuticals pharma bancorp hospital clinic school academy agency ministry council society
association trust industries enterprises networks software studios media motors energy
consulting logistics""")
ORG_OF_PREFIXES = _words("bank university college institute ministry department school")
FIRST_NAMES = _words("""
james john robert michael william david richard joseph thomas charles christopher daniel
matthew anthony steven paul andrew joshua kenneth kevin brian george edward ronald timothy
jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon
benjamin samuel gregory alexander patrick raymond dennis jerry tyler aaron jose adam henry
nathan douglas zachary peter kyle noah ethan jeremy walter christian keith roger terry sean
gerald carl dylan harold jesse bryan lawrence arthur gabriel bruce logan albert alan juan
wayne elijah randy roy vincent ralph eugene russell bobby mason philip louis liam oliver
lucas leo finn tom tim jim bob steve mike dave dan sam ben alex max nick tony joe fred ted
mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty
sandra margaret ashley kimberly emily donna michelle carol amanda melissa deborah stephanie
dorothy rebecca sharon laura cynthia amy kathleen angela shirley brenda emma anna pamela
nicole samantha katherine christine helen debra rachel carolyn janet maria catherine heather
diane olivia julie joyce ruth lauren kelly christina joan evelyn judith andrea hannah megan
cheryl jacqueline martha teresa gloria sara janice ann kathryn abigail sophia frances jean
alice judy isabella julia denise danielle marilyn beverly natalie theresa diana brittany
doris kayla alexis lori marie jane sophie chloe amelia ava mia ella zoe lucy kate emily
priya raj rahul amit anil arjun deepak ananya vikram sanjay neha pooja anjali ravi suresh
mohammed muhammad ahmed ali fatima aisha omar hassan yusuf layla mustafa khalid
wei ming hiroshi yuki kenji haruto sakura takeshi mei hana jun
carlos luis jorge miguel javier sofia lucia valentina mateo diego pedro ana alejandro pablo
francesca giulia marco luca giuseppe matteo hans klaus anke lars sven ingrid olga ivan
dmitri sergei natasha pierre francois camille amelie""")
KNOWN_ORGS = _words("""
google alphabet amazon apple microsoft meta facebook instagram whatsapp netflix tesla ibm intel
nvidia amd oracle salesforce adobe stripe paypal shopify visa mastercard amex uber lyft airbnb
spotify slack zoom atlassian github gitlab dropbox twitter linkedin samsung sony walmart costco
ikea fedex ups dhl usps zendesk intercom hubspot twilio openai anthropic verizon comcast hsbc
barclays deloitte accenture mckinsey ebay etsy klarna revolut notion figma asana trello
docusign mailchimp sap siemens toyota honda bmw volkswagen nike adidas starbucks""")
PLACES = frozenset("""
america canada mexico brazil argentina chile colombia peru uk usa england scotland wales
ireland france germany spain portugal italy netherlands belgium switzerland austria sweden
norway denmark finland poland ukraine russia turkey greece egypt nigeria kenya ethiopia india
pakistan bangladesh china japan korea vietnam thailand singapore malaysia indonesia
philippines australia london paris berlin madrid rome amsterdam dublin vienna prague warsaw
lisbon barcelona munich zurich stockholm oslo copenhagen helsinki brussels moscow istanbul
dubai mumbai delhi bangalore bengaluru tokyo osaka seoul beijing shanghai toronto vancouver
montreal chicago boston seattle denver miami atlanta dallas houston california texas florida
""".split()) | {"new york", "san francisco", "los angeles", "hong kong", "united states",
                "united kingdom", "new zealand", "south africa", "new jersey", "san diego",
                "las vegas", "north america", "south america", "europe", "asia", "africa"}
# Capitalised words that are not names: sentence starters, calendar words, support nouns,
# imperative verbs (a run such as "Ask Jane" must not become the person "Ask Jane").
STOP = _words("""
i i'm i've i'll i'd me my mine myself you your yours he him his she her hers it its we us our
ours they them their this that these those there here who whom whose what which when where
why how whatever whoever the a an and or but nor so yet for if then than as at by in on of to
from with without about above below into onto over under after before during since until
till upon via per within across along among around behind beyond near off out up down
through toward towards while because although though unless whether once also is are was
were be been being am do does did done has have had having can could will would shall should
may might must let lets not no yes ok okay please just only still again never always often
sometimes maybe perhaps however therefore otherwise meanwhile overall finally additionally
anyway actually basically currently recently today tomorrow yesterday tonight now later soon
already sorry regards best sincerely kind warm welcome note notes nb ps fyi re fw fwd subject
update updates summary reminder todo action item items morning afternoon evening night week
weekend month year quarter day days monday tuesday wednesday thursday friday saturday sunday
mon tue tues wed thu thur thurs fri sat sun january february march april june july august
september october november december jan feb mar apr jun jul aug sep sept oct nov dec
christmas easter thanksgiving halloween ramadan diwali hanukkah eid customers clients users
agents support team staff manager admin order orders refund refunds return returns payment
payments invoice invoices ticket tickets case cases issue issues account accounts
subscription plan plans product products shipping delivery package price total status email
phone address name date time problem error bug request question answer help service services
center centre portal guide manual policy page form report docs documentation faq terms
conditions privacy settings dashboard login password billing checkout cart discount coupon
promo sale store shop first second third last next new old final all any each every some
none both either neither another other such many much more most few several ask asked call
called email emailed send sent tell told remind reminded ping pinged notify check checked
meet met spoke talked gave give get got make made take took see saw use used follow reply
replied forward schedule book cancel cancelled canceled add added remove removed review
reviewed confirm confirmed escalate escalated assign assigned invite invited visit visited
pay paid ship shipped buy bought sell sold need needs want wants like likes prefer prefers
love loves hate say says said important urgent high low medium good great bad happy quick
world everyone everybody folks guys english french german spanish italian portuguese chinese
japanese korean russian arabic hindi dutch american british european canadian australian
indian internet web online app api sdk url pdf csv json ai memory memories preference
preferences fact facts""")
