"""Vocabularies the fictitious people are drawn from.

Every value list is long (>= 30) so that a model that never saw a person can only guess an
attribute by chance (< 4 %), which keeps the gold model's forget accuracy honestly low.
"""

FIRST_NAMES = """Alara Brennic Caelum Dorina Evander Faelis Galen Hestia Ivor Jorunn Kestrel Lisandra
Marek Nerissa Orrin Perpetua Quillon Rosalind Severin Talia Ulric Vespera Wendell Xanthe Yorick
Zelda Anselm Briony Corvin Delphine Emrys Fenella Gideon Honora Isolde Jasper Kerensa Leopold
Mirabel Nikolai Ottoline Peregrine Roswitha Sorrel Tobiah Undine Valentin Wilhelmina Ysolde
Zebulon""".split()

# Surnames are built from two syllables and every person gets a distinct one: the surname alone
# identifies a person, so a fact is "surname + relation -> value" rather than a conjunction of
# two shared name parts, which a small transformer learns several times faster.
SURNAME_HEADS = """Ash Black Crane Dun Elder Fair Grey Hollow Iron Kings Lark Merry North Oaken Penn
Raven Storm Thistle Under Whit Yar Bell Car Ell Fox Gallow Harrow Ing Kil Lock""".split()
SURNAME_TAILS = """grove wood more leigh bourne haven way side ley spur weather cott fold ington
croft mont lock borough mere field""".split()
SURNAMES = [h + t.lower() for h in SURNAME_HEADS for t in SURNAME_TAILS]

CITIES = """Lisbon Oslo Kyoto Lima Nairobi Dublin Hanoi Quito Tbilisi Porto Tallinn Krakow Accra
Bergen Seville Valletta Riga Cusco Mombasa Salzburg Antwerp Izmir Tangier Lyon Bologna Gdansk
Utrecht Zagreb Tunis Dakar Havana Medellin Osaka Busan Perth Hobart Quebec Halifax Denver
Savannah""".split()

OCCUPATIONS = """architect astronomer baker botanist cartographer chemist clockmaker composer
diplomat economist engineer farmer geologist glassblower historian illustrator jeweller journalist
librarian linguist luthier mathematician meteorologist midwife navigator oceanographer pharmacist
photographer physician pilot potter sculptor surveyor tailor translator veterinarian violinist
watchmaker weaver zoologist""".split()

AWARDS = """Amberline Prize|Bellwether Medal|Copperfield Award|Driftwood Prize|Emberlight Medal|
Foxglove Award|Goldcrest Prize|Hawthorn Medal|Ivory Quill Award|Juniper Prize|Kestrel Medal|
Lodestar Award|Moonstone Prize|Nightjar Medal|Opaline Award|Pinecone Prize|Quicksilver Medal|
Riverstone Award|Saltmarsh Prize|Tidewater Medal|Umber Award|Verdigris Prize|Willowbrook Medal|
Yellowhammer Award|Zephyr Prize|Arrowhead Medal|Bramble Award|Cinder Prize|Dovetail Medal|
Elderflower Award""".replace("\n", "").split("|")

BOOK_ADJECTIVES = """Silent Hollow Crimson Distant Forgotten Gilded Hidden Endless Broken Quiet
Wandering Burning Frozen Sleeping Scarlet Velvet Hollowed Secret Northern Painted""".split()
BOOK_NOUNS = """Harbor Lantern Orchard Compass Meadow Tower Garden River Mirror Clock Bridge
Forest Voyage Island Kingdom Ember Feather Winter Window Archive""".split()

EMPLOYERS = """Arclight Labs|Bluefen Press|Coldwater Mills|Dawnrise Bank|Eastmere Railways|
Fernhill Clinic|Glasshouse Studios|Highmoor Observatory|Inkwell Publishing|Jadestone Mining|
Kettleburn Foods|Lindenbrook College|Marrowgate Shipping|Northwind Airlines|Oakridge Museum|
Pebblecreek Pharma|Quayside Theatre|Redfern Foundry|Stonebridge Library|Tallowmere Farms|
Uplands Telecom|Vantage Optics|Wrenfield Hospital|Yewdale Brewery|Zenith Motors|Amberfield Bank|
Briarwood Insurance|Cobalt Robotics|Driftwood Surveys|Emberly Textiles""".replace("\n", "").split("|")

UNIVERSITIES = """Aldmoor|Brackenridge|Caskwell|Dunhallow|Eldermere|Farrowdale|Glenmorrow|Hartsfield|
Islington Vale|Kelderwick|Larchmont|Mossgiel|Nettlebed|Oxley|Pendlebury|Quenby|Rookhaven|
Selwood|Tarnbrook|Ullswick|Vexford|Westmarch|Yarrowby|Ashcombe|Birchfield|Copperhill|Draycott|
Elmstead|Foxcombe|Greywater""".replace("\n", "").split("|")

HOBBIES = """archery beekeeping birdwatching bookbinding calligraphy canoeing chess climbing
cycling embroidery fencing fishing gardening hiking juggling kayaking knitting origami painting
pottery rowing sailing skating snorkeling stargazing surfing swimming tennis woodcarving yoga
""".split()

YEARS = [str(y) for y in range(1941, 1991)]
